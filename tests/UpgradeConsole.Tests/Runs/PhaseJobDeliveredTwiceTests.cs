using System.Text.RegularExpressions;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Hangfire delivers a job at least once. The phase job of a running <c>pip install</c> is enqueued twice
/// more while it runs, and once more after it ended: pip runs once on the target, every line of it is in
/// the log once, and each spare delivery says in the log that it did nothing.
/// </summary>
public sealed partial class PhaseJobDeliveredTwiceTests(SshServer ssh, PostgresServer postgres) : IAsyncDisposable
{
    private const int SlowLines = 6;
    private FractalTarget? _fractal;
    private UpgradeConsoleApplicationFactory? _app;

    [Fact]
    public async Task ThePhaseJobEnqueuedAgain_RunsTheRemoteStepOnce()
    {
        _app = new UpgradeConsoleApplicationFactory();
        var admin = await _app.CreateFirstAdminAsync();
        _fractal = await FractalTarget.CreateAsync(_app, admin, ssh, postgres);
        await _fractal.PrepareForUpgradeAsync(ssh);

        // pip goes through a Python that counts its calls on the host and prints a line a second.
        var home = await _fractal.Host.AbsoluteDirectoryAsync();
        var venvBin = $"{home}/venv/bin";
        await _fractal.Host.WriteFileAsync("venv/bin/python-slow", $$"""
            #!/bin/bash
            if [ "${1:-}" = "-m" ] && [ "${2:-}" = "pip" ] && [ "${3:-}" = "install" ]; then
              echo called >> {{home}}/pip-calls
              for i in $(seq 1 {{SlowLines}}); do echo "slow-pip line $i"; sleep 1; done
            fi
            exec "$(dirname "$0")/python" "$@"
            """);
        Assert.Equal(0, (await ssh.RunAsync($"chmod 755 {venvBin}/python-slow")).ExitCode);
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var target = await db.Targets.SingleAsync(t => t.Id == _fractal.TargetId);
            target.PythonPath = $"{venvBin}/python-slow";
            await db.SaveChangesAsync();
        }

        // Planned and started as the run page does it: through the run service, as the Admin.
        var runId = await SlowPipRun.PlanAsAdminAsync(_app, _fractal.TargetId);
        var started = await _app.AsAsync<RunService, RunResult>(UpgradeConsoleApplicationFactory.AdminEmail, (runs, actor) => runs.StartAsync(runId, actor, CancellationToken.None));
        Assert.True(started.Succeeded, started.Error);

        await Eventually.TrueAsync(async () => (await admin.GetStringAsync($"/runs/{runId}/log.txt")).Contains("slow-pip line 2", StringComparison.Ordinal), TimeSpan.FromMinutes(3));
        int pipIndex;
        string pipJob;
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var pip = await db.RunPhases.AsNoTracking().SingleAsync(p => p.RunId == runId && p.Key == "pip-install");
            Assert.NotNull(pip.JobId);
            Assert.NotNull(pip.LeaseOwner);
            pipIndex = pip.Index;
            pipJob = pip.JobId;
        }

        var jobs = _app.Services.GetRequiredService<IBackgroundJobClient>();
        jobs.Enqueue<RunJob>(j => j.RunPhaseAsync(runId, pipIndex, CancellationToken.None));
        jobs.Enqueue<RunJob>(j => j.RunPhaseAsync(runId, pipIndex, CancellationToken.None));

        string state = "";
        await Eventually.TrueAsync(async () =>
        {
            state = StatePattern().Match(await admin.GetStringAsync($"/runs/{runId}")).Groups[1].Value;
            return state is not ("Running" or "Planned");
        }, TimeSpan.FromMinutes(4));

        // And once more after the phase ended.
        jobs.Enqueue<RunJob>(j => j.RunPhaseAsync(runId, pipIndex, CancellationToken.None));
        await Eventually.TrueAsync(async () => (await admin.GetStringAsync($"/runs/{runId}/log.txt")).Contains("the phase is Succeeded", StringComparison.Ordinal), TimeSpan.FromMinutes(1));

        var log = await admin.GetStringAsync($"/runs/{runId}/log.txt");
        Assert.True(state == "WaitingForChecklist", $"run is {state}\n{log}");
        var lines = log.Split('\n');
        for (var i = 1; i <= SlowLines; i++)
        {
            Assert.Equal(1, lines.Count(l => l == $"slow-pip line {i}"));
        }

        Assert.Single(lines, l => l == "Successfully installed fractal-server-2.17.0");
        // The two deliveries enqueued above; on a machine loaded enough to delay a lease renewal past its 30 s the recovery job
        // may put the phase back once more, which must do nothing either (the step above ran once).
        Assert.InRange(lines.Count(l => l.Contains("its job was delivered again while node", StringComparison.Ordinal)), 2, 3);
        Assert.Single(lines, l => l.Contains("the phase is Succeeded", StringComparison.Ordinal) && l.Contains("this delivery did nothing", StringComparison.Ordinal));
        // The run page links the phase to its job in /jobs.
        Assert.Contains($"href=\"/jobs/jobs/details/{pipJob}\"", await admin.GetStringAsync($"/runs/{runId}"), StringComparison.Ordinal);
        Assert.Contains($"Run {runId}, phase {pipIndex}", await admin.GetStringAsync($"/jobs/jobs/details/{pipJob}"), StringComparison.Ordinal);
        Assert.Equal("called", (await ssh.RunAsync($"cat {home}/pip-calls")).StandardOutput.Trim());
    }

    [GeneratedRegex("""data-testid="run-state"[^>]*>([A-Za-z]+)<""")]
    private static partial Regex StatePattern();

    public async ValueTask DisposeAsync()
    {
        if (_fractal is not null)
        {
            await _fractal.DisposeAsync();
        }

        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }
}
