using System.Text;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Jobs;

/// <summary>
/// Removes the step directories of finished runs from their targets once <see cref="HousekeepingOptions.KeepStepDirectories"/>
/// has passed since the run ended (a recurring Hangfire job, daily). Only a run that is finished (not active: succeeded,
/// rolled back or abandoned) and only its own directory (<c>run-ID-KEY</c> under the target's step directory), a
/// directory of the SSH user and no symlink, and never one holding a step without its exit code (it may still run).
/// One audit event per directory removed. A target that cannot be reached is left for the next day, and the job
/// fails saying which (visible under /jobs).
/// </summary>
public sealed class StepDirectoryCleanup(
    AppDbContext db,
    TargetConnections connections,
    AuditLog audit,
    IOptions<HousekeepingOptions> options,
    TimeProvider clock,
    ILogger<StepDirectoryCleanup> logger)
{
    public const string JobId = "step-directories";

    private const string Removed = "UC:REMOVED ";
    private const string Skipped = "UC:SKIPPED ";

    [AutomaticRetry(Attempts = 0)]
    [DisableConcurrentExecution(timeoutInSeconds: 60)]
    [JobDisplayName("Housekeeping: step directories of finished runs on the targets")]
    public async Task RunAsync(CancellationToken ct)
    {
        var cutoff = clock.GetUtcNow() - options.Value.KeepStepDirectories;
        // Compared here, not in SQL: SQLite cannot compare DateTimeOffset values.
        var finished = (await db.Runs.AsNoTracking()
                .Where(r => r.ActiveTargetId == null && (r.State == RunState.Succeeded || r.State == RunState.RolledBack || r.State == RunState.Abandoned
                    // A failed rehearsal is finished too: nothing resumes it (ADR 0022).
                    || (r.State == RunState.Failed && r.RunbookId.EndsWith(Runbooks.RehearsalRunbooks.Suffix))) && r.EndedAt != null)
                .Select(r => new { r.Id, r.TargetId, r.RemoteKey, r.EndedAt, r.State })
                .ToListAsync(ct))
            .Where(r => r.EndedAt < cutoff).ToList();
        var unreachable = new List<string>();
        foreach (var group in finished.GroupBy(r => r.TargetId))
        {
            var target = await db.Targets.AsNoTracking().FirstOrDefaultAsync(t => t.Id == group.Key, ct);
            if (target is null || target.HostKeyState != HostKeyState.Pinned)
            {
                // Deleted, or blocked until an Admin re-pins: nothing is sent to it.
                continue;
            }

            var runs = group.ToDictionary(r => new Run { Id = r.Id, RemoteKey = r.RemoteKey }.RemoteRunId, r => r, StringComparer.Ordinal);
            try
            {
                var shell = await connections.ShellAsync(target, ct);
                foreach (var batch in runs.Keys.Where(StepLocation.IsValidId).Chunk(200))
                {
                    var result = await shell.RunAsync(Script(target.RunsDirectory, batch), ct, TimeSpan.FromMinutes(5));
                    foreach (var line in result.Output.Split('\n'))
                    {
                        if (line.StartsWith(Removed, StringComparison.Ordinal) && runs.TryGetValue(line[Removed.Length..].Trim(), out var run))
                        {
                            await audit.RecordAsync("system", "run.step-directory-removed", target.Id, $"run {run.Id}",
                                new { run = run.Id, directory = $"{target.RunsDirectory.TrimEnd('/')}/{line[Removed.Length..].Trim()}", state = run.State.ToString(), endedAt = run.EndedAt, kept = options.Value.KeepStepDirectories.ToString() }, ct);
                        }
                        else if (line.StartsWith(Skipped, StringComparison.Ordinal))
                        {
                            logger.LogWarning("Step directory on {Target} left in place: {Why}", target.Name, line[Skipped.Length..]);
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is SshConnectionException or HostKeyNotPinnedException or TimeoutException or InvalidOperationException)
            {
                logger.LogWarning(ex, "Step directories on {Target} were not cleaned: {Message}", target.Name, ex.Message);
                unreachable.Add($"{target.Name}: {ex.Message}");
            }
        }

        if (unreachable.Count > 0)
        {
            throw new InvalidOperationException("Step directories were left on these targets (tried again tomorrow): " + string.Join("; ", unreachable));
        }
    }

    /// <summary>
    /// The script for one target: each name is a validated id, quoted; the step directory's path may start with ~/.
    /// A run's directory is removed only when it is a real directory of this user and each step in it that started has
    /// its exit code (else it may still run, and it stays).
    /// </summary>
    internal static string Script(string runsDirectory, IEnumerable<string> runIds)
    {
        var script = new StringBuilder();
        script.Append("runs=").Append(ShellWords.QuotePath(runsDirectory.TrimEnd('/'))).Append('\n');
        script.Append("for __uc_run in");
        foreach (var id in runIds)
        {
            script.Append(' ').Append(ShellWords.Quote(id));
        }

        script.Append("; do\n");
        script.Append($$"""
              __uc_d="$runs/$__uc_run"
              [ -e "$__uc_d" ] || [ -L "$__uc_d" ] || continue
              if [ -L "$__uc_d" ] || [ ! -d "$__uc_d" ] || [ ! -O "$__uc_d" ]; then echo "{{Skipped}}$__uc_run is not a directory of $(id -un)"; continue; fi
              __uc_live=
              for __uc_s in "$__uc_d"/*/; do
                if [ -e "$__uc_s.started" ] && [ ! -e "${__uc_s}exit" ]; then __uc_live=$__uc_s; fi
              done
              if [ -n "$__uc_live" ]; then echo "{{Skipped}}$__uc_run: the step $__uc_live has no exit code (it may still run)"; continue; fi
              rm -rf -- "$__uc_d" && echo "{{Removed}}$__uc_run"
            done

            """);
        return script.ToString();
    }
}
