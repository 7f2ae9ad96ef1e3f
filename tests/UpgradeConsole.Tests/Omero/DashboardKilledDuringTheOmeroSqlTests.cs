using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Omero;

/// <summary>
/// The dashboard process is killed (SIGKILL) while OMERO's upgrade SQL runs on the target (held inside
/// its transaction by a lock the test keeps on <c>adminprivilege</c>, a table the script inserts into),
/// and started again: the phase job reattaches to the step still running, the SQL is not started a
/// second time, and the run goes on to its checklist with one <c>dbpatch</c> row for the new version.
/// On the dashboard's embedded SQLite and on PostgreSQL (where a facility runs several nodes).
/// </summary>
public sealed class DashboardKilledDuringTheOmeroSqlTests(SshServer ssh, PostgresServer postgres) : IAsyncDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("uc-omero-kill-").FullName;
    private OmeroTarget? _omero;

    public static TheoryData<DatabaseProvider> Providers => [DatabaseProvider.Sqlite, DatabaseProvider.PostgreSQL];

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task TheSqlPhase_ContinuesAfterARestart_WithoutRunningTheSqlTwice(DatabaseProvider provider)
    {
        var connectionString = provider == DatabaseProvider.PostgreSQL ? await postgres.CreateDatabaseAsync() : null;
        var settings = provider == DatabaseProvider.PostgreSQL
            ? new Dictionary<string, string> { ["Database:Provider"] = "PostgreSQL", ["ConnectionStrings:UpgradeConsole"] = connectionString! }
            : null;
        int runId;
        await using (var app = new UpgradeConsoleApplicationFactory(provider, connectionString, _data))
        {
            using var admin = await app.CreateFirstAdminAsync();
            var omero = _omero = await OmeroTarget.CreateAsync(app, ssh, postgres);
            var planned = await app.AsAsync<RunService, RunResult>(UpgradeConsoleApplicationFactory.AdminEmail, (s, actor) =>
                s.PlanAsync(omero.TargetId, "omero-upgrade", OmeroHost.NewVersion, null, new Dictionary<string, string>(), actor, CancellationToken.None));
            Assert.True(planned.Succeeded, planned.Error);
            runId = planned.RunId!.Value;
        }

        var token = (await ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), "tokens", "create", "--user", UpgradeConsoleApplicationFactory.AdminEmail, "--name", "kill test", "--role", "Admin"],
            environment: new Dictionary<string, string?>
            {
                ["UpgradeConsole__DataDirectory"] = _data,
                ["DOTNET_ENVIRONMENT"] = "Production",
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
            }.Concat(settings is null ? [] : new Dictionary<string, string?>
            {
                ["Database__Provider"] = "PostgreSQL",
                ["ConnectionStrings__UpgradeConsole"] = connectionString,
                ["UpgradeConsole__KeyEncryptionKey"] = UpgradeConsoleApplicationFactory.TestKeyEncryptionKey,
            }).ToDictionary(),
            workingDirectory: AppContext.BaseDirectory)).StandardOutput.Trim();

        // The upgrade SQL will wait inside its transaction for this lock (pg_dump and the precheck only read: SHARE lets them).
        await using var hold = await TableLock.HoldAsync(_omero.Host.DatabaseConnection, "adminprivilege", "SHARE");

        var privilegesBefore = await _omero.Host.ScalarAsync<long>("SELECT count(*) FROM adminprivilege");

        // Process A starts the run and is killed while the upgrade SQL waits in psql.
        await using (var first = await DashboardProcess.StartAsync(_data, settings))
        {
            using var api = ApiTokens.Client(first.BaseUrl, token);
            using (var start = await api.PostAsync($"/api/v1/runs/{runId}/start", null))
            {
                Assert.True(start.IsSuccessStatusCode, await start.Content.ReadAsStringAsync());
            }

            await Eventually.TrueAsync(async () => (await api.GetStringAsync($"/api/v1/runs/{runId}/log")).Contains("[sql] psql -f", StringComparison.Ordinal),
                TimeSpan.FromMinutes(6), () => first.Output);
            await first.KillAsync();
        }

        // Process B takes the phase over and reattaches to the step; only then does the SQL get its lock.
        await using (var second = await DashboardProcess.StartAsync(_data, settings))
        {
            using var api = ApiTokens.Client(second.BaseUrl, token);
            await Eventually.TrueAsync(async () => (await api.GetStringAsync($"/api/v1/runs/{runId}/log")).Contains("continuing after an interruption", StringComparison.Ordinal),
                TimeSpan.FromMinutes(2), () => second.Output);
            await hold.ReleaseAsync();

            JsonElement run = default;
            await Eventually.TrueAsync(async () =>
            {
                run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}");
                return run.GetProperty("state").GetString() is not ("Running" or "Planned");
            }, TimeSpan.FromMinutes(6), () => second.Output);
            var log = await api.GetStringAsync($"/api/v1/runs/{runId}/log");
            Assert.True(run.GetProperty("state").GetString() == "WaitingForChecklist", $"{run}\n{log}\n{second.Output}");

            var lines = log.Split('\n');
            Assert.Single(lines, l => l.Contains("[sql] psql -f", StringComparison.Ordinal));
            Assert.Single(lines, l => l.Contains("YOU HAVE SUCCESSFULLY UPGRADED YOUR DATABASE TO VERSION OMERO5.4__0", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.Contains("Upgrade the database: continuing after an interruption", StringComparison.Ordinal));
        }

        Assert.Equal(1L, await _omero.Host.ScalarAsync<long>("SELECT count(*) FROM dbpatch WHERE currentversion = 'OMERO5.4'"));
        Assert.Equal(privilegesBefore + 15, await _omero.Host.ScalarAsync<long>("SELECT count(*) FROM adminprivilege"));
        Assert.Equal("OMERO5.4__0", await _omero.Host.DbVersionAsync());
    }

    public async ValueTask DisposeAsync()
    {
        if (_omero is not null)
        {
            await _omero.DisposeAsync();
        }

        // The killed process's ssh ControlMaster and agent live under the data directory: end them too.
        await ProcessRunner.RunAsync("pkill", ["-f", _data], check: false);
        Directory.Delete(_data, recursive: true);
    }
}
