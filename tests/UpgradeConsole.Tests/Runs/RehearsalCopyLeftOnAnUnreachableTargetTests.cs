using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Rehearsals;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Issue 18: "the scratch database, cluster, venv and files are removed at the end, also after a failure or a dashboard
/// restart (a recurring cleanup finds leftovers)". The target goes away (every SSH connection reset, new ones refused,
/// through a relay in front of the real sshd) while a rehearsal's copy is on it: the rehearsal ends Failed with its
/// cleanup recorded as left. While the target is still away the recurring job leaves it and fails naming it; once the
/// target is back, the recurring job (triggered under /jobs as an Admin would) drops the scratch database and removes
/// the scratch directory and the rehearsal's dump, audits it, and a later pass finds nothing more to do.
/// </summary>
public sealed class RehearsalCopyLeftOnAnUnreachableTargetTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private const string Runbook = "fractal-2.16-to-2.17.0";
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private readonly TcpRelay _relay = new(ssh.Port);
    private FractalTarget _fractal = default!;
    private string _token = "";

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        var admin = await _app.CreateFirstAdminAsync();
        await _app.CreateUserAsync(admin, "olivia@example.org", "Operator");
        _token = await ApiTokens.CreateAsync(_app, "olivia@example.org", "rehearsal script", "Operator");
        _fractal = await FractalTarget.CreateAsync(_app, admin, ssh, postgres);
        await _fractal.PrepareForUpgradeAsync(ssh);
        await using (var conn = new NpgsqlConnection(postgres.AdminConnectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"ALTER ROLE \"{new NpgsqlConnectionStringBuilder(_fractal.DatabaseConnection).Username}\" CREATEDB", conn);
            await cmd.ExecuteNonQueryAsync();
        }

        // From now on the dashboard reaches the target through the relay (the same sshd and pinned key).
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var target = await db.Targets.SingleAsync(t => t.Id == _fractal.TargetId);
        target.Port = _relay.Port;
        target.Version = Guid.NewGuid();
        await db.SaveChangesAsync();
    }

    [Fact]
    public async Task TargetAwayAtTheRehearsalsEnd_TheCopyIsRecordedAsLeft_AndTheRecurringCleanupRemovesItOnceTheTargetIsBack()
    {
        var release = await RehearsalAndRealRunOnOneTargetTests.HoldScratchVenvAsync(_app, _fractal, ssh);
        using var api = ApiTokens.Client(_app.BaseUrl, _token);
        using var started = await api.PostAsJsonAsync($"/api/v1/targets/{_fractal.TargetId}/rehearsals", new { runbook = Runbook }, TestContext.Current.CancellationToken);
        Assert.True(started.StatusCode == HttpStatusCode.Created, await started.Content.ReadAsStringAsync());
        var id = (await started.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken)).GetProperty("id").GetInt32();
        // The setup step is on the target, waiting (its venv's Python said so in the log): dump, scratch database and directory exist.
        await Eventually.TrueAsync(async () => (await api.GetStringAsync($"/api/v1/runs/{id}/log")).Contains("held until", StringComparison.Ordinal), TimeSpan.FromMinutes(3),
            () => $"rehearsal {id} did not reach its held setup step");
        var scratchDir = $"~/.upgradeconsole/runs/{await RemoteRunIdAsync(id)}-scratch";
        var database = new NpgsqlConnectionStringBuilder(_fractal.DatabaseConnection).Database!;
        var dumps = $"~/upgradeconsole-backups/fractal-{database}-rehearsal{id}-a*";

        // The target goes away with the copy on it; the held step then ends on the target by itself.
        _relay.Refusing = true;
        _relay.CutAll();
        Assert.Equal(0, (await ssh.RunAsync($"touch {release}")).ExitCode);
        JsonElement run = default;
        await Eventually.TrueAsync(async () => (run = await RunAsync(api, id)).GetProperty("state").GetString() is not "Running", TimeSpan.FromMinutes(6), () => run.ToString());
        Assert.Equal("Failed", run.GetProperty("state").GetString());
        Assert.Contains("The target cannot be reached", run.GetProperty("message").GetString(), StringComparison.Ordinal);
        var cleanup = await PhaseAsync(api, id, "rehearsal-cleanup");
        Assert.Equal(("Pending", RehearsalLeftovers.LeftMessage), (cleanup!.Value.State, cleanup.Value.Message));
        await Eventually.TrueAsync(async () => (await ssh.RunAsync($"ls ~/.upgradeconsole/runs/{await RemoteRunIdAsync(id)}/*rehearsal-setup*/exit", check: false)).ExitCode == 0,
            TimeSpan.FromMinutes(3), () => "the held setup step did not end on the target");
        Assert.Equal((1L, "1", "1"), (await ScratchDatabasesAsync(database), await CountAsync(scratchDir), await CountAsync(dumps)));

        // The hourly pass while the target is still away: nothing is removed, and the job fails naming the rehearsal.
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var failed = await Assert.ThrowsAsync<InvalidOperationException>(() => scope.ServiceProvider.GetRequiredService<RehearsalLeftovers>().RunAsync(TestContext.Current.CancellationToken));
            Assert.Contains($"(rehearsal {id})", failed.Message, StringComparison.Ordinal);
        }

        Assert.Equal((1L, "1"), (await ScratchDatabasesAsync(database), await CountAsync(scratchDir)));
        Assert.DoesNotContain(await _app.AuditEventsAsync(), e => e.Action == "run.rehearsal-leftovers");

        // Back: the recurring job, triggered under /jobs, removes the copy.
        _relay.Refusing = false;
        var admin = await _app.SignedInClientAsync(UpgradeConsole.Core.Accounts.Roles.Admin);
        var page = await (await admin.GetAsync("/jobs/recurring", TestContext.Current.CancellationToken)).Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains(RehearsalLeftovers.JobId, page, StringComparison.Ordinal);
        using (var trigger = await Jobs.JobsDashboardAccessTests.TriggerAsync(admin, page, RehearsalLeftovers.JobId))
        {
            Assert.True(trigger.IsSuccessStatusCode, $"trigger: {(int)trigger.StatusCode}");
        }

        await Eventually.TrueAsync(async () => (await _app.AuditEventsAsync()).Any(e => e.Action == "run.rehearsal-leftovers" && e.Subject == $"run {id}"), TimeSpan.FromMinutes(3),
            () => string.Join('\n', _app.Logs.Lines.TakeLast(60)));
        var removed = (await _app.AuditEventsAsync()).Single(e => e.Action == "run.rehearsal-leftovers");
        Assert.Contains("\"state\":\"Succeeded\"", removed.Details, StringComparison.Ordinal);
        Assert.Equal((0L, "0", "0"), (await ScratchDatabasesAsync(database), await CountAsync(scratchDir), await CountAsync(dumps)));

        // The rehearsal's outcome stays; its cleanup phase and its log say what happened.
        run = await RunAsync(api, id);
        Assert.Equal("Failed", run.GetProperty("state").GetString());
        Assert.Equal("Succeeded", (await PhaseAsync(api, id, "rehearsal-cleanup"))!.Value.State);
        var log = await api.GetStringAsync($"/api/v1/runs/{id}/log", TestContext.Current.CancellationToken);
        Assert.Contains("by the recurring cleanup (attempt 2)", log, StringComparison.Ordinal);
        Assert.Contains($"[cleanup] dropped the scratch database {database}_rehearsal_{id}", log, StringComparison.Ordinal);
        Assert.DoesNotContain(FractalTarget.DbPassword, log, StringComparison.Ordinal);

        // Nothing is left to do: the next pass changes nothing and records nothing.
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<RehearsalLeftovers>().RunAsync(TestContext.Current.CancellationToken);
        }

        Assert.Single(await _app.AuditEventsAsync(), e => e.Action == "run.rehearsal-leftovers");
    }

    private async Task<string> RemoteRunIdAsync(int id)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        return (await scope.ServiceProvider.GetRequiredService<AppDbContext>().Runs.AsNoTracking().SingleAsync(r => r.Id == id)).RemoteRunId;
    }

    private async Task<string> CountAsync(string glob) =>
        (await ssh.RunAsync($"ls -d {glob} 2>/dev/null | wc -l")).StandardOutput.Trim();

    private async Task<long> ScratchDatabasesAsync(string database)
    {
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_database WHERE starts_with(datname, @db || '_rehearsal_')", conn);
        cmd.Parameters.AddWithValue("db", database);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    private static async Task<JsonElement> RunAsync(HttpClient api, int id) =>
        await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{id}");

    private static async Task<(string? State, string? Message)?> PhaseAsync(HttpClient api, int id, string key) =>
        (await RunAsync(api, id)).GetProperty("phases").EnumerateArray().Where(p => p.GetProperty("key").GetString() == key)
            .Select(p => ((string? State, string? Message)?)(p.GetProperty("state").GetString(), p.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null))
            .FirstOrDefault();

    public async ValueTask DisposeAsync()
    {
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
        await _relay.DisposeAsync();
    }
}
