using System.Security.Claims;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.EnvFiles;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Runs;

/// <summary>The phases of the Fractal runbooks (and their rollback), on one run of one target.</summary>
public sealed class FractalPhases(
    Run run,
    Target target,
    FractalContext context,
    RemoteStepEngine engine,
    RunLogWriter log,
    AppDbContext db,
    PreflightService preflight)
{
    private const string EnvFile = ".fractal_server.env";
    private const string OldEnvFile = ".fractal_server.env.old";

    private IRemoteShell Shell => context.Shell;

    private FractalHostSettings Host(string? python = null) => new(
        target.WorkingDirectory,
        python ?? ServerPython,
        target.ServerUrl,
        target.StopCommand,
        target.StartCommand,
        target.StatusCommand,
        target.BackupDirectory,
        (target.PipOptions ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries));

    private string ServerPython => Plan.Python ?? target.PythonPath ?? throw new InvalidOperationException("The server's Python is not known; set the target's Python path.");

    // The plan is fixed once the run is planned: read it once.
    private RunPlanSnapshot Plan => field ??= JsonSerializer.Deserialize<RunPlanSnapshot>(run.PlanJson, JsonSerializerOptions.Web) ?? new RunPlanSnapshot();

    public Task<PhaseOutcome> RunAsync(RunPhase phase, PhaseDefinition? definition, bool recovering, CancellationToken ct) => phase.Key switch
    {
        "preflight" => PreflightAsync(phase, ct),
        "env-old" => EnvOldAsync(phase, ct),
        "backup" => BackupAsync(phase, ct),
        "stop" or "rb-stop" => RemoteAsync(phase, FractalScripts.Stop(Host()), TimeSpan.FromMinutes(5), idempotent: true, ct: ct),
        "env-write" => EnvWriteAsync(phase, ct),
        "verify-files" => VerifyFilesAsync(phase, ct),
        "pip-install" => RemoteAsync(phase, FractalScripts.PipInstall(Host(), run.ToVersion), TimeSpan.FromMinutes(30), idempotent: true, ct: ct),
        "set-db" => RemoteAsync(phase, FractalScripts.SetDb(Host()), TimeSpan.FromHours(2), idempotent: true, ct: ct),
        "update-db-data" => RemoteAsync(phase, FractalScripts.UpdateDbData(Host()), TimeSpan.FromHours(4), idempotent: false, ct: ct),
        "start" => RemoteAsync(phase, FractalScripts.Start(Host(), run.ToVersion, TimeSpan.FromMinutes(2)), TimeSpan.FromMinutes(5), idempotent: true, ct: ct),
        "post-checks" => PostChecksAsync(phase, ct),
        "rb-restore-db" => RestoreDatabaseAsync(phase, ct),
        "rb-env" => RestoreEnvAsync(phase, ct),
        "rb-pip" => RemoteAsync(phase, FractalScripts.PipInstall(Host(), run.FromVersion), TimeSpan.FromMinutes(30), idempotent: true, ct: ct),
        "rb-start" => RemoteAsync(phase, FractalScripts.Start(Host(), run.FromVersion, TimeSpan.FromMinutes(2)), TimeSpan.FromMinutes(5), idempotent: true, ct: ct),
        "rb-verify" => VerifyRestoreAsync(phase, ct),
        _ => Task.FromResult(PhaseOutcome.Failed($"No implementation for phase {phase.Key}.")),
    };

    private async Task<PhaseOutcome> PreflightAsync(RunPhase phase, CancellationToken ct)
    {
        var actor = new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, run.StartedBy ?? "system")], "run"));
        var result = await preflight.RunAsync(run.TargetId, actor, ct, forRun: run.Id);
        var overrides = JsonSerializer.Deserialize<Dictionary<string, string>>(run.OverridesJson, JsonSerializerOptions.Web) ?? [];
        var runbook = Runbooks.Find(run.RunbookId);
        var failing = new List<string>();
        foreach (var check in PreflightService.Checks(result))
        {
            var overridden = check.Status == CheckStatus.Fail && overrides.TryGetValue(check.Id, out var reason);
            var required = runbook?.Requires(check.Id) ?? true;
            await log.WriteAsync(phase, $"{(check.Status == CheckStatus.Pass ? "pass" : check.Status == CheckStatus.Warn ? "WARN" : overridden ? "FAIL (overridden)" : required ? "FAIL" : "fail (not required by this runbook)")} {check.Title}: {check.Explanation}" +
                (overridden ? $" — override: {overrides[check.Id]}" : ""), ct: ct);
            if (check.Status == CheckStatus.Fail && !overridden && required)
            {
                failing.Add(check.Title);
            }
        }

        return failing.Count == 0 ? PhaseOutcome.Done() : PhaseOutcome.Failed($"{failing.Count} check(s) fail: {string.Join("; ", failing)}.");
    }

    private async Task<string> ReadAsync(string name, CancellationToken ct)
    {
        var result = await Shell.RunAsync($"cat -- {ShellWords.QuotePath(target.WorkingDirectory.TrimEnd('/') + "/" + name)}", ct, TimeSpan.FromSeconds(60));
        return result.ExitCode == 0 ? result.Output : throw new InvalidOperationException($"Cannot read {name}: {result.StandardError.Trim()}");
    }

    private async Task<bool> ExistsAsync(string name, CancellationToken ct) =>
        (await Shell.RunAsync($"test -f {ShellWords.QuotePath(target.WorkingDirectory.TrimEnd('/') + "/" + name)} && echo yes", ct, TimeSpan.FromSeconds(30))).Output.Trim() == "yes";

    /// <summary>Writes a file in the working directory atomically (temp file + rename), keeping the mode of <paramref name="modeFrom"/>.</summary>
    private async Task WriteAsync(string name, string content, string modeFrom, CancellationToken ct)
    {
        var dir = ShellWords.QuotePath(target.WorkingDirectory);
        var result = await Shell.RunAsync($"""
            set -e
            cd -- {dir}
            tmp=$(mktemp {ShellWords.Quote("." + name + ".XXXXXX")})
            printf '%s' {ShellWords.Quote(content)} > "$tmp"
            chmod --reference={ShellWords.Quote(modeFrom)} "$tmp" 2>/dev/null || chmod 600 "$tmp"
            mv -f -- "$tmp" {ShellWords.Quote(name)}
            """, ct, TimeSpan.FromSeconds(60));
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"Could not write {name}: {result.StandardError.Trim()}");
        }
    }

    private async Task<PhaseOutcome> EnvOldAsync(RunPhase phase, CancellationToken ct)
    {
        var current = await ReadAsync(EnvFile, ct);
        if (!EnvMigrator.Migrate(current, run.OAuthClient).Changed && await ExistsAsync(OldEnvFile, ct))
        {
            // The env file is already the new one (a retry after env-write): the .old copy must not be overwritten.
            await log.WriteAsync(phase, $"{EnvFile} is already in the 2.17.0 shape; keeping the existing {OldEnvFile}.", ct: ct);
            return PhaseOutcome.Done("kept");
        }

        // The env file needs an absolute path (~ means nothing to Fractal): expand it on the host.
        var python = (await Shell.RunAsync($"printf '%s' {ShellWords.QuotePath(ServerPython)}", ct, TimeSpan.FromSeconds(30))).Output;
        var old = EnvMigrator.OldCopy(current, python);
        await WriteAsync(OldEnvFile, old, EnvFile, ct);
        await log.WriteAsync(phase, $"Copied {EnvFile} to {OldEnvFile}" + (old.Length != current.Length ? $" and added FRACTAL_SLURM_WORKER_PYTHON={python}." : "."), ct: ct);
        return PhaseOutcome.Done();
    }

    private async Task<PhaseOutcome> BackupAsync(RunPhase phase, CancellationToken ct)
    {
        run.UserTablesChecksum ??= await context.Database.UserTablesChecksumAsync(ct);
        await db.SaveChangesAsync(ct);
        var name = $"fractal-{context.Env.GetValueOrDefault("POSTGRES_DB")}-run{run.Id}-a{phase.Attempt}.dump";
        BackupRecord? backup = null;
        var outcome = await RemoteAsync(phase, FractalScripts.Backup(Host(), name), TimeSpan.FromHours(6), idempotent: true,
            FractalScripts.PostgresEnvironment(context.Env), line => backup ??= FractalScripts.ParseBackup(line), ct);
        if (outcome.State != PhaseState.Succeeded)
        {
            return outcome;
        }

        if (backup is null)
        {
            return PhaseOutcome.Failed("The backup step did not report the dump's size and checksum.");
        }

        (run.BackupPath, run.BackupSize, run.BackupSha256, run.BackupMilliseconds) = (backup.Path, backup.Size, backup.Sha256, backup.Milliseconds);
        await db.SaveChangesAsync(ct);
        return PhaseOutcome.Done($"{backup.Path}, {backup.Size} bytes, SHA-256 {backup.Sha256[..12]}…, {backup.Milliseconds} ms");
    }

    private async Task<PhaseOutcome> EnvWriteAsync(RunPhase phase, CancellationToken ct)
    {
        var current = await ReadAsync(EnvFile, ct);
        var migration = EnvMigrator.Migrate(current, run.OAuthClient);
        foreach (var warning in migration.Warnings)
        {
            await log.WriteAsync(phase, "warning: " + warning, ct: ct);
        }

        if (migration.Refused)
        {
            return PhaseOutcome.Failed(string.Join(" ", migration.Refusals) + $" {EnvFile} was not changed.");
        }

        if (!migration.Changed)
        {
            await log.WriteAsync(phase, $"{EnvFile} is already in the 2.17.0 shape.", ct: ct);
            return PhaseOutcome.Done("already migrated");
        }

        var kept = $"{EnvFile}.pre-{run.ToVersion}-run{run.Id}";
        if (!await ExistsAsync(kept, ct))
        {
            await WriteAsync(kept, current, EnvFile, ct);
        }

        run.KeptEnvFile = kept;
        await db.SaveChangesAsync(ct);
        foreach (var change in migration.Changes)
        {
            await log.WriteAsync(phase, $"{change.Kind} {change.Key}{(change.NewKey is null ? "" : " → " + change.NewKey)}: {change.Reason}", ct: ct);
        }

        await WriteAsync(EnvFile, migration.NewText!, EnvFile, ct);
        await log.WriteAsync(phase, $"Wrote {EnvFile}; the 2.16 version is kept as {kept}.", ct: ct);
        return PhaseOutcome.Done();
    }

    private async Task<PhaseOutcome> VerifyFilesAsync(RunPhase phase, CancellationToken ct)
    {
        var old = DotEnvFile.Parse(await ReadAsync(OldEnvFile, ct)).Values();
        var files = new List<string> { OldEnvFile, EnvFile };
        foreach (var key in new[] { "FRACTAL_SLURM_CONFIG_FILE", "FRACTAL_PIXI_CONFIG_FILE" })
        {
            if (old.GetValueOrDefault(key) is { Length: > 0 } file)
            {
                files.Add(file);
            }
        }

        return await RemoteAsync(phase, FractalScripts.VerifyFiles(Host(), files), TimeSpan.FromMinutes(1), idempotent: true, ct: ct);
    }

    private async Task<PhaseOutcome> PostChecksAsync(RunPhase phase, CancellationToken ct)
    {
        var problems = new List<string>();
        var head = await context.Database.AlembicVersionAsync(ct);
        await log.WriteAsync(phase, $"alembic_version: {head}", ct: ct);
        if (head != "83bc2ad3ffcc")
        {
            problems.Add($"alembic_version is {head}, not 83bc2ad3ffcc");
        }

        var (resources, unlinked) = await context.Database.PostUpgradeAsync(Plan.MigratedUserIds, ct);
        await log.WriteAsync(phase, $"resources: {resources}", ct: ct);
        if (resources != 1)
        {
            problems.Add($"{resources} resources, expected 1");
        }

        await log.WriteAsync(phase, $"users expected to be migrated: {Plan.MigratedUserIds.Count}; without a profile or project_dir: {unlinked.Count}", ct: ct);
        if (unlinked.Count > 0)
        {
            problems.Add("not migrated: " + string.Join(", ", unlinked));
        }

        foreach (var email in Plan.LeftOutUsers)
        {
            await log.WriteAsync(phase, $"left out (no profile; cannot work in 2.17): {email}", ct: ct);
        }

        return problems.Count == 0 ? PhaseOutcome.Done() : PhaseOutcome.Failed(string.Join("; ", problems));
    }

    private async Task<PhaseOutcome> RestoreDatabaseAsync(RunPhase phase, CancellationToken ct)
    {
        if (run.BackupPath is null)
        {
            return PhaseOutcome.Failed("This run has no verified backup to restore.");
        }

        return await RemoteAsync(phase, FractalScripts.RestoreDatabase(Host(), run.BackupPath, run.BackupSha256), TimeSpan.FromHours(6), idempotent: true,
            FractalScripts.PostgresEnvironment(context.Env), ct: ct);
    }

    private async Task<PhaseOutcome> RestoreEnvAsync(RunPhase phase, CancellationToken ct)
    {
        if (run.KeptEnvFile is null)
        {
            await log.WriteAsync(phase, $"{EnvFile} was not rewritten by this run; nothing to restore.", ct: ct);
            return PhaseOutcome.Done("nothing to restore");
        }

        await WriteAsync(EnvFile, await ReadAsync(run.KeptEnvFile, ct), run.KeptEnvFile, ct);
        await log.WriteAsync(phase, $"Restored {EnvFile} from {run.KeptEnvFile}.", ct: ct);
        return PhaseOutcome.Done();
    }

    private async Task<PhaseOutcome> VerifyRestoreAsync(RunPhase phase, CancellationToken ct)
    {
        var head = await context.Database.AlembicVersionAsync(ct);
        var checksum = await context.Database.UserTablesChecksumAsync(ct);
        await log.WriteAsync(phase, $"alembic_version: {head}; user tables {(checksum == run.UserTablesChecksum ? "match" : "DIFFER from")} the pre-upgrade snapshot", ct: ct);
        return head == (Plan.AlembicHead ?? PreflightChecks.Head216) && checksum == run.UserTablesChecksum
            ? PhaseOutcome.Done()
            : PhaseOutcome.Failed($"After the restore alembic_version is {head} and the user tables {(checksum == run.UserTablesChecksum ? "match" : "do not match")} the snapshot.");
    }

    /// <summary>
    /// Runs a script as a detached remote step of this phase's attempt, or reattaches to it after a
    /// restart, storing every line with its offset. A lost step of a non-idempotent phase needs a person.
    /// </summary>
    private async Task<PhaseOutcome> RemoteAsync(RunPhase phase, string script, TimeSpan timeout, bool idempotent,
        IReadOnlyDictionary<string, string>? environment = null, Action<string>? onLine = null, CancellationToken ct = default)
    {
        var location = new StepLocation(target.RunsDirectory, run.RemoteRunId, phase.StepId ?? $"{phase.Index:00}-{phase.Key}-a{phase.Attempt}");
        if (phase.StepId is null)
        {
            phase.StepId = location.StepId;
            phase.LogOffset = 0;
            await db.SaveChangesAsync(ct);
        }

        var status = await engine.GetStatusAsync(location, ct);
        if (status.State == RemoteStepState.NotStarted)
        {
            await engine.StartAsync(new RemoteStep
            {
                Location = location,
                Script = script,
                Environment = environment ?? new Dictionary<string, string>(),
                Timeout = timeout,
                RunAsUser = target.ServiceUser,
            }, ct);
        }

        await RunLogPump.PumpAsync(engine, location, phase, log, onLine, ct);
        status = await engine.GetStatusAsync(location, ct);
        return status.State switch
        {
            RemoteStepState.Exited when status.ExitCode == 0 => PhaseOutcome.Done(),
            RemoteStepState.Exited => PhaseOutcome.Failed(status.TimedOut ? $"timed out after {timeout}" : status.Cancelled ? "cancelled" : $"the step exited with {status.ExitCode}", status.ExitCode),
            _ when idempotent => PhaseOutcome.Failed("The step ended without an exit code (the host restarted, or it was killed)."),
            _ => new PhaseOutcome(PhaseState.NeedsAttention, "The step ended without an exit code, so whether it completed is unknown. It is never re-run automatically: check the target, then retry, mark it done or roll back."),
        };
    }
}

/// <summary>What the plan recorded for the run to use later (no secrets).</summary>
public sealed record RunPlanSnapshot
{
    public string? Python { get; init; }

    public IReadOnlyList<int> MigratedUserIds { get; init; } = [];

    public IReadOnlyList<string> LeftOutUsers { get; init; } = [];

    public long? DatabaseSize { get; init; }

    /// <summary>The alembic head before the upgrade: where a restore must bring the database back.</summary>
    public string? AlembicHead { get; init; }

    /// <summary>Whether the optional data migration (update-db-data) was chosen for a release upgrade.</summary>
    public bool DataMigration { get; init; }
}
