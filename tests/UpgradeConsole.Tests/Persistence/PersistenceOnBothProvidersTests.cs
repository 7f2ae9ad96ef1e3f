using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Persistence;

/// <summary>The same behaviour on SQLite (the default) and PostgreSQL (production), each a real database.</summary>
public sealed class PersistenceOnBothProvidersTests(PostgresServer postgres)
{
    public static TheoryData<DatabaseProvider> Providers => [DatabaseProvider.Sqlite, DatabaseProvider.PostgreSQL];

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task Start_OnEmptyDatabase_AppliesEveryMigration_AndModelMatchesThem(DatabaseProvider provider)
    {
        await using var app = await StartAsync(provider);
        await using var scope = app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();

        Assert.Empty(await db.Database.GetPendingMigrationsAsync(TestContext.Current.CancellationToken));
        Assert.NotEmpty(await db.Database.GetAppliedMigrationsAsync(TestContext.Current.CancellationToken));
        // Both migration sets must be regenerated with every model change (scripts/add-migration.sh).
        Assert.False(db.Database.HasPendingModelChanges(), $"The {provider} migrations are behind the model.");
        Assert.Equal(
            ["Admin", "Operator", "Viewer"],
            await db.Roles.Select(r => r.Name!).OrderBy(n => n).ToListAsync(TestContext.Current.CancellationToken));
    }

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task UsersAndSessions_SurviveARestart(DatabaseProvider provider)
    {
        var connectionString = provider == DatabaseProvider.PostgreSQL ? await postgres.CreateDatabaseAsync() : null;
        var dataDirectory = Directory.CreateTempSubdirectory("uc-restart-").FullName;
        try
        {
            string authCookie;
            await using (var first = new UpgradeConsoleApplicationFactory(provider, connectionString, dataDirectory))
            {
                await first.CreateFirstAdminAsync();
                var client = first.CreateBrowserLikeClient();
                var login = await client.PostFormAsync("/account/login", "login", new()
                {
                    ["Input.Email"] = UpgradeConsoleApplicationFactory.AdminEmail,
                    ["Input.Password"] = UpgradeConsoleApplicationFactory.AdminPassword,
                });
                await login.ExpectRedirectAsync("/");
                authCookie = login.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("UpgradeConsole.Auth=", StringComparison.Ordinal)).Split(';')[0];
            }

            await using var second = new UpgradeConsoleApplicationFactory(provider, connectionString, dataDirectory);
            // The cookie issued before the restart still opens the dashboard: the key ring was persisted.
            var anonymous = second.CreateBrowserLikeClient();
            using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/users");
            request.Headers.Add("Cookie", authCookie);
            var page = await (await anonymous.SendAsync(request)).ExpectOkAsync();
            Assert.Contains(UpgradeConsoleApplicationFactory.AdminEmail, page, StringComparison.Ordinal);

            // The account itself persisted, and no new setup token was issued for a dashboard with users.
            await second.LoginAsAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
            Assert.DoesNotContain(second.Logs.Lines, l => l.Contains("/setup?token=", StringComparison.Ordinal));
            var setup = await second.CreateBrowserLikeClient().GetStringAsync("/setup?token=anything");
            Assert.Contains("Setup link not valid", setup, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task Sqlite_Default_IsAFileInTheDataDirectory()
    {
        await using var app = await StartAsync(DatabaseProvider.Sqlite);
        Assert.True(File.Exists(Path.Combine(app.DataDirectory, "upgradeconsole.db")));
        var mode = File.GetUnixFileMode(app.DataDirectory);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, mode);
    }

    private async Task<UpgradeConsoleApplicationFactory> StartAsync(DatabaseProvider provider)
    {
        var app = provider == DatabaseProvider.PostgreSQL
            ? new UpgradeConsoleApplicationFactory(provider, await postgres.CreateDatabaseAsync())
            : new UpgradeConsoleApplicationFactory(provider);
        var health = await app.CreateBrowserLikeClient().GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        return app;
    }
}
