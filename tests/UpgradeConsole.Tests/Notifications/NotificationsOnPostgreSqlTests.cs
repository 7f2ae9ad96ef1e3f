using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Notifications;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Notifications;

/// <summary>
/// The notifications on production's provider: the dashboard on a real PostgreSQL (its migrations, Notifications
/// included, applied at start; Hangfire's PostgreSQL storage) sends a rollback to a webhook and to the person who asked
/// for it, keeps the delivery log, and a second delivery of the dispatch job adds nothing (the log's unique index).
/// </summary>
public sealed class NotificationsOnPostgreSqlTests(PostgresServer postgres) : IAsyncLifetime
{
    private static readonly string[] RolledBackOnly = ["run.rolled-back"];
    private NotificationRig _rig = default!;

    public async ValueTask InitializeAsync()
    {
        _rig = new NotificationRig(DatabaseProvider.PostgreSQL, await postgres.CreateDatabaseAsync());
        await _rig.InitializeAsync();
    }

    [Fact]
    public async Task ARollback_IsNotifiedAndLogged_OnPostgreSql()
    {
        var ct = TestContext.Current.CancellationToken;
        await using (var scope = _rig.App.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            Assert.Equal("Npgsql.EntityFrameworkCore.PostgreSQL", db.Database.ProviderName);
            Assert.Contains(await db.Database.GetAppliedMigrationsAsync(ct), m => m.EndsWith("_Notifications", StringComparison.Ordinal));
            Assert.Empty(await db.Database.GetPendingMigrationsAsync(ct));
        }

        var (runId, _) = await RunSeed.AddRunningRunAsync(_rig.App.Services, null, ("pip-install", "Install", PhaseState.Pending));
        int targetId;
        await using (var scope = _rig.App.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            targetId = (await db.Runs.FirstAsync(r => r.Id == runId, ct)).TargetId;
            await db.Runs.Where(r => r.Id == runId).ExecuteUpdateAsync(s => s.SetProperty(r => r.State, RunState.Failed).SetProperty(r => r.Message, $"smtp {_rig.Smtp.Password}"), ct);
        }

        using var created = await _rig.Admin.PostAsJsonAsync($"/api/v1/targets/{targetId}/webhooks", new { name = "pg", url = _rig.Receiver.Url("/pg"), events = RolledBackOnly }, ct);
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync(ct));
        var secret = (await created.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("secret").GetString()!;
        await _rig.PreferAsync(NotificationRig.Chooser, targetId, NotificationEvents.RolledBack | NotificationEvents.RunSucceeded);

        using (var rollback = await _rig.Operator.PostAsJsonAsync($"/api/v1/runs/{runId}/rollback", new { reason = "not today" }, ct))
        {
            Assert.True(rollback.IsSuccessStatusCode, await rollback.Content.ReadAsStringAsync(ct));
        }

        var deliveries = await _rig.SettledAsync(targetId, 2);
        var hook = Assert.Single(_rig.Receiver.At("/pg"));
        Assert.Equal("sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), hook.Body)), hook.Headers["X-UpgradeConsole-Signature"]);
        Assert.Equal(runId, JsonDocument.Parse(hook.Body).RootElement.GetProperty("run").GetProperty("id").GetInt32());
        var mail = Assert.Single(_rig.Smtp.Mails(), m => m.Contains($"X-Envelope-To: {NotificationRig.Chooser}", StringComparison.Ordinal));
        Assert.Contains($"{NotificationRig.PublicUrl}/runs/{runId}", mail, StringComparison.Ordinal);
        Assert.DoesNotContain(_rig.Smtp.Password, mail, StringComparison.Ordinal);
        Assert.DoesNotContain(_rig.Smtp.Password, Encoding.UTF8.GetString(hook.Body), StringComparison.Ordinal);

        // The delivery log through the API.
        var log = await _rig.Admin.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{targetId}/notifications/deliveries", ct);
        Assert.Equal(2, log.GetArrayLength());
        Assert.All(log.EnumerateArray(), d => Assert.Equal("Delivered", d.GetProperty("state").GetString()));

        // Hangfire delivers at least once: the dispatch job of the same audit event again adds no delivery.
        await using (var scope = _rig.App.Services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<NotificationJob>().DispatchAsync(deliveries[0].AuditEventId, ct);
        }

        Assert.Equal(2, (await _rig.DeliveriesAsync(targetId)).Count);
    }

    public async ValueTask DisposeAsync() => await _rig.DisposeAsync();
}
