using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Finding 3 of issue 20: the run's own preflight loses its SSH connection once (the target's status
/// command kills the sshd session it runs in, as a dropped link looks to the dashboard). The phase tries
/// again, says so in the log, and passes: nobody has to decide anything.
/// </summary>
public sealed class TransientPreflightFailureTests(SshServer ssh, PostgresServer postgres)
{
    [Fact]
    public async Task RunPreflight_WhoseConnectionDropsOnce_RetriesAndPasses()
    {
        await using var run = await CrashRun.PlanAsync(ssh, postgres, async (app, fractal) =>
        {
            await fractal.Host.WriteFileAsync("status-drops-once.sh", """
                #!/bin/bash
                # The first call ends the SSH connection it came over (its sshd session process); later calls answer.
                here="$(cd "$(dirname "$0")" && pwd)"
                if [ ! -e "$here/.dropped" ]; then
                  : > "$here/.dropped"
                  p=$PPID
                  while [ "${p:-1}" -gt 1 ]; do
                    case "$(ps -o comm= -p "$p")" in sshd*) kill -9 "$p"; sleep 5; exit 0 ;; esac
                    p=$(ps -o ppid= -p "$p" | tr -d ' ')
                  done
                fi
                exec "$here/service.sh" is-active
                """);
            Assert.Equal(0, (await ssh.RunAsync($"chmod 755 {await fractal.Host.AbsoluteDirectoryAsync()}/status-drops-once.sh")).ExitCode);
            await using var scope = app.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var target = await db.Targets.SingleAsync(t => t.Id == fractal.TargetId);
            target.StatusCommand = $"{fractal.Host.Directory}/status-drops-once.sh";
            await db.SaveChangesAsync();
        });

        await using var process = await run.StartDashboardAsync();
        StoredRun stored = new();
        await Eventually.TrueAsync(async () =>
        {
            stored = await run.ReadAsync();
            return stored.Phases.Single(p => p.Key == "preflight").State is not ("Pending" or "Running") || stored.State != "Running";
        }, TimeSpan.FromMinutes(4), () => $"{run.Events}\n{process.Output}");

        var log = string.Join('\n', stored.Lines.Select(l => l.Text));
        Assert.True(stored.Phases.Single(p => p.Key == "preflight").State == "Succeeded", log);
        Assert.Single(stored.Lines, l => l.Text.StartsWith("preflight: ", StringComparison.Ordinal) && l.Text.Contains("Trying again in 2 s (retry 1 of 2).", StringComparison.Ordinal));
        Assert.DoesNotContain(stored.Lines, l => l.Text.StartsWith("FAIL", StringComparison.Ordinal));
    }
}
