using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Jobs;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Jobs;

/// <summary>
/// The daily step-directory housekeeping against the real sshd: a finished run's directory goes once it is older
/// than the retention period (audited); a recent one, an active run's, a run whose step has no exit code, and a
/// directory the dashboard does not know all stay. Triggered the way an Admin does under /jobs.
/// </summary>
public sealed class StepDirectoriesOfFinishedRunsTests(SshServer ssh) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private readonly string _runs = "~/.uc-cleanup-" + Guid.NewGuid().ToString("N")[..8];

    public async ValueTask InitializeAsync()
    {
        _app.WithSetting("Housekeeping:KeepStepDirectories", "10.00:00:00");
        await _app.CreateFirstAdminAsync();
    }

    [Fact]
    public async Task FinishedRunsOlderThanTheRetention_LoseTheirStepDirectories_NothingElseIsTouched()
    {
        var targetId = await _app.AddTargetAsync(new()
        {
            ["Name"] = "cleanup",
            ["Host"] = ssh.Host,
            ["Port"] = ssh.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["SshUser"] = ssh.User,
            ["AuthMethod"] = "KeyFile",
            ["KeyFilePath"] = ssh.ClientKeyPath,
            ["Transport"] = "SshNet",
            ["WorkingDirectory"] = "/tmp",
            ["RunsDirectory"] = _runs,
        });
        await _app.PinHostKeyAsync(targetId, await ssh.HostKeyFingerprintAsync());

        var now = TimeProvider.System.GetUtcNow();
        var old = await AddRunAsync(targetId, RunState.Succeeded, now.AddDays(-40));
        var rolledBack = await AddRunAsync(targetId, RunState.RolledBack, now.AddDays(-11));
        var recent = await AddRunAsync(targetId, RunState.Succeeded, now.AddDays(-2));
        var stillRunning = await AddRunAsync(targetId, RunState.Abandoned, now.AddDays(-40));
        var active = await AddRunAsync(targetId, RunState.Failed, null);
        var home = _runs[2..];
        var script = string.Join(" && ",
            Step(home, old, exited: true), Step(home, rolledBack, exited: true), Step(home, recent, exited: true),
            Step(home, stillRunning, exited: false), Step(home, active, exited: true), Step(home, "run-999-unknown", exited: true));
        await ssh.RunAsync(script);

        var admin = await _app.SignedInClientAsync(UpgradeConsole.Core.Accounts.Roles.Admin);
        var page = await (await admin.GetAsync("/jobs/recurring", TestContext.Current.CancellationToken)).Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains(StepDirectoryCleanup.JobId, page, StringComparison.Ordinal);
        using var trigger = await JobsDashboardAccessTests.TriggerAsync(admin, page, StepDirectoryCleanup.JobId);
        Assert.True(trigger.IsSuccessStatusCode, $"trigger: {(int)trigger.StatusCode}");

        await Eventually.TrueAsync(async () => (await _app.AuditEventsAsync()).Count(e => e.Action == "run.step-directory-removed") >= 2, TimeSpan.FromSeconds(90));
        var left = (await ssh.RunAsync($"ls -1 {home}")).StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order().ToList();
        Assert.Equal(new[] { recent, stillRunning, active, "run-999-unknown" }.Order(), left);
        var removed = (await _app.AuditEventsAsync()).Where(e => e.Action == "run.step-directory-removed").Select(e => e.Subject).Order().ToList();
        Assert.Equal(new[] { $"run {Id(old)}", $"run {Id(rolledBack)}" }.Order(), removed);
        await _app.Logs.WaitForAsync("has no exit code (it may still run)");
    }

    private static string Step(string home, string run, bool exited) =>
        $"mkdir -p {home}/{run}/step-1 && touch {home}/{run}/step-1/.started {home}/{run}/step-1/log" + (exited ? $" && echo 0 > {home}/{run}/step-1/exit" : "");

    private static int Id(string remoteRunId) => int.Parse(remoteRunId.Split('-')[1], System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A run put straight into the database, finished at <paramref name="endedAt"/> (null: still active); returns its directory's name.</summary>
    private async Task<string> AddRunAsync(int targetId, RunState state, DateTimeOffset? endedAt)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var run = new Run
        {
            TargetId = targetId,
            ActiveTargetId = endedAt is null ? targetId : null,
            RunbookId = UpgradeConsole.Web.Fractal.FractalRunbooks.ReleaseId,
            FromVersion = "2.16.6",
            ToVersion = "2.16.7",
            State = state,
            PlannedBy = "test",
            PlannedAt = TimeProvider.System.GetUtcNow().AddDays(-50),
            EndedAt = endedAt,
        };
        db.Runs.Add(run);
        await db.SaveChangesAsync();
        return run.RemoteRunId;
    }

    public async ValueTask DisposeAsync()
    {
        await ssh.RunAsync($"rm -rf {_runs[2..]}", check: false);
        await _app.DisposeAsync();
    }
}
