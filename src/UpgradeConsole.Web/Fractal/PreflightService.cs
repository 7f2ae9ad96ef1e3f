using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Fractal;

/// <summary>
/// Gathers the facts of a Fractal target over SSH and from its database, runs the checks, and stores the result.
/// A person's preflight first checks the role they hold now in the database (Operator); a run's own preflight phase acts for the run.
/// </summary>
public sealed class PreflightService(AppDbContext db, TargetService targets, FractalAccess access, AuditLog audit, TimeProvider clock, Accounts.UserAccess people)
{
    /// <summary>
    /// Waits before the retries of a run's preflight that failed by a timeout or a dropped connection; their
    /// count bounds the retries. A loaded host or a blip of the link is not a reason to stop a run for a person.
    /// </summary>
    public static readonly IReadOnlyList<TimeSpan> RunRetryDelays = [TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5)];

    public async Task<PreflightRun> RunAsync(int targetId, ClaimsPrincipal actor, CancellationToken ct, int? forRun = null, Func<string, Task>? onRetry = null)
    {
        if (forRun is null)
        {
            await people.RequireAsync(actor, UpgradeConsole.Core.Accounts.Roles.Operator);
        }

        var target = await targets.FindAsync(targetId, ct) ?? throw new InvalidOperationException("No such target.");
        IReadOnlyList<CheckResult> checks;
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                checks = PreflightChecks.Evaluate(await GatherAsync(target, forRun, ct));
                break;
            }
            catch (Exception ex) when (forRun is not null && attempt < RunRetryDelays.Count && IsTransient(ex) && !ct.IsCancellationRequested)
            {
                if (onRetry is not null)
                {
                    await onRetry($"preflight: {ex.Message} Trying again in {RunRetryDelays[attempt].TotalSeconds:0} s (retry {attempt + 1} of {RunRetryDelays.Count}).");
                }

                await Task.Delay(RunRetryDelays[attempt], clock, ct);
            }
            catch (Exception ex) when (ex is InvalidOperationException or SshConnectionException or HostKeyNotPinnedException or RemoteCommandException or TimeoutException)
            {
                checks = [new CheckResult("target.reachable", "The target can be reached and read", CheckStatus.Fail, ex.Message, $"/targets/{targetId}", "Check the target")];
                break;
            }
        }

        return await RecordAsync(db, audit, clock, actor, target, checks, ct);
    }

    /// <summary>
    /// Stores a preflight's results for the target and writes its audit event: the one way every product's preflight is
    /// recorded (the plan, the run's gate and the overview read the latest).
    /// </summary>
    internal static async Task<PreflightRun> RecordAsync(AppDbContext db, AuditLog audit, TimeProvider clock, ClaimsPrincipal actor, Target target, IReadOnlyList<CheckResult> checks, CancellationToken ct)
    {
        var run = new PreflightRun
        {
            TargetId = target.Id,
            At = clock.GetUtcNow(),
            Actor = actor.Identity?.Name ?? "system",
            ChecksJson = JsonSerializer.Serialize(checks, JsonSerializerOptions.Web),
            Failed = checks.Count(c => c.Status == CheckStatus.Fail),
            Warnings = checks.Count(c => c.Status == CheckStatus.Warn),
        };
        db.Add(run);
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(actor, "preflight.run", target.Id, target.Name, new
        {
            run.Id,
            run.Failed,
            run.Warnings,
            failedChecks = checks.Where(c => c.Status == CheckStatus.Fail).Select(c => c.Id),
        }, ct);
        return run;
    }

    public Task<PreflightRun?> LatestAsync(int targetId, CancellationToken ct) =>
        db.Set<PreflightRun>().AsNoTracking().Where(p => p.TargetId == targetId).OrderByDescending(p => p.Id).FirstOrDefaultAsync(ct);

    public static IReadOnlyList<CheckResult> Checks(PreflightRun run) =>
        JsonSerializer.Deserialize<List<CheckResult>>(run.ChecksJson, JsonSerializerOptions.Web) ?? [];

    private async Task<PreflightFacts> GatherAsync(Target target, int? forRun, CancellationToken ct)
    {
        var active = await db.Set<Runs.Run>().AsNoTracking().FirstOrDefaultAsync(r => r.ActiveTargetId == target.Id && r.Id != forRun, ct);
        var rehearsed = await Rehearsals.PassingRehearsal.LatestAsync(db, target.Id, ct);
        // The run's own preflight is a phase: it never waits behind people's requests.
        await using var context = forRun is null ? await access.OpenForPeopleAsync(target, ct) : await access.OpenAsync(target, ct);
        var shell = context.Shell;
        var env = context.Env;
        var workdir = ShellWords.QuotePath(target.WorkingDirectory);

        // Independent of each other, so all at once (issue 17, item 9): the SSH commands each on their own channel of the
        // one connection, the database's facts over one connection of the forward.
        var discovering = FractalDiscovery.DiscoverAsync(shell, TargetService.Location(target), context.EnvText, ct);
        var reading = ReadDatabaseAsync(context.Database, ct);
        var checkingWorker = env.GetValueOrDefault("FRACTAL_SLURM_WORKER_PYTHON") is { Length: > 0 } worker && worker.StartsWith('/')
            ? shell.RunAsync($"test -x {ShellWords.Quote(worker)} && test -f {ShellWords.Quote(worker)} && echo yes", ct, TimeSpan.FromSeconds(30))
            : null;
        var measuringBackup = shell.RunAsync(
            $"d={ShellWords.QuotePath(target.BackupDirectory)}; while [ ! -d \"$d\" ]; do d=$(dirname -- \"$d\"); done; df -Pk -- \"$d\" | awk 'NR==2 {{print $4}}'",
            ct, TimeSpan.FromSeconds(30));
        var askingPgDump = shell.RunAsync("pg_dump --version 2>/dev/null", ct, TimeSpan.FromSeconds(30));
        var askingStatus = shell.RunAsync($"cd -- {workdir} 2>/dev/null; {target.StatusCommand} 2>&1", ct, TimeSpan.FromSeconds(60));
        var readingSlurm = ReadFileAsync(shell, workdir, env.GetValueOrDefault("FRACTAL_SLURM_CONFIG_FILE"), ct);
        var readingPixi = ReadFileAsync(shell, workdir, env.GetValueOrDefault("FRACTAL_PIXI_CONFIG_FILE"), ct);
        await Task.WhenAll(new Task[] { discovering, reading, measuringBackup, askingPgDump, askingStatus, readingSlurm, readingPixi }.Concat(checkingWorker is null ? [] : [checkingWorker]));

        var discovery = await discovering;
        var (facts, dbError) = await reading;
        bool? workerExists = checkingWorker is null ? null : (await checkingWorker).Output.Trim() == "yes";
        var backupFree = await measuringBackup;
        var pgDump = await askingPgDump;
        var status = await askingStatus;
        return new PreflightFacts
        {
            TargetId = target.Id,
            Env = env,
            InstalledVersion = discovery.InstalledVersion,
            AliveVersion = discovery.AliveVersion,
            AliveError = discovery.AliveError,
            ServerPython = discovery.Python,
            AlembicVersion = facts?.AlembicVersion,
            DatabaseError = dbError,
            Users = facts is null ? [] : MigrationRules.Classify(facts.Users, context.Backend),
            SshHosts = facts?.SshHosts ?? [],
            WorkerPythonExists = workerExists,
            SlurmConfig = await readingSlurm,
            PixiConfig = await readingPixi,
            BackupDirectory = target.BackupDirectory,
            BackupFreeBytes = long.TryParse(backupFree.Output.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var kib) ? kib * 1024 : null,
            DatabaseSizeBytes = facts?.SizeBytes,
            PgDumpMajor = PgDumpMajor(pgDump.Output),
            ServerMajor = facts?.ServerMajor,
            StatusExitCode = status.ExitCode,
            StatusOutput = status.Output,
            // The run that runs this preflight as its first phase does not count against itself.
            ActiveRun = active is null ? null : $"Run {active.Id} ({active.State})",
            RehearsalRequiredWithin = target.RequirePassingRehearsalWithin,
            LatestPassingRehearsal = rehearsed is { } passed ? $"rehearsal {passed.Id}" : null,
            LatestPassingRehearsalEndedAt = rehearsed?.EndedAt,
            CheckedAt = clock.GetUtcNow(),
        };
    }

    /// <summary>The database's facts, or why it cannot be read (a check then says so; the rest of the preflight goes on).</summary>
    private static async Task<(DatabaseFacts? Facts, string? Error)> ReadDatabaseAsync(FractalDatabase database, CancellationToken ct)
    {
        try
        {
            return (await database.FactsAsync(ct), null);
        }
        catch (Npgsql.NpgsqlException ex)
        {
            return (null, ex.Message);
        }
    }

    /// <summary>A command that hit its time limit, or a link that could not be made or broke: worth another try. A changed host key never is.</summary>
    public static bool IsTransient(Exception ex) =>
        ex is TimeoutException || (ex is SshConnectionException ssh && ssh is not HostKeyMismatchException && ssh.Failure is not (SshFailure.BadKey or SshFailure.KeyRefused or SshFailure.Dns));

    /// <summary>A config file named in the env file; relative names resolve against the working directory, as Fractal does.</summary>
    private static async Task<RemoteFile?> ReadFileAsync(IRemoteShell shell, string workdir, string? path, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(path))
        {
            return null;
        }

        var read = await shell.RunAsync($"cd -- {workdir} && test -f {ShellWords.Quote(path)} && cat -- {ShellWords.Quote(path)}", ct, TimeSpan.FromSeconds(30));
        return read.ExitCode == 0 ? new RemoteFile(path, true, read.Output) : new RemoteFile(path, false, null);
    }

    private static int? PgDumpMajor(string output)
    {
        // "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        var match = System.Text.RegularExpressions.Regex.Match(output, @"\)\s+(\d+)");
        return match.Success ? int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : null;
    }
}
