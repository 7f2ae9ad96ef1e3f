using UpgradeConsole.Core.EnvFiles;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Runs;

/// <summary>One phase as the plan shows it: what it runs, exactly (secrets masked).</summary>
/// <summary>A phase as planned; an optional phase not chosen is recorded as skipped.</summary>
public sealed record PlannedPhase(PhaseDefinition Definition, string? Commands, bool Chosen = true);

/// <summary>Everything a person reads before starting a run.</summary>
public sealed record Plan
{
    public string? Error { get; init; }

    public Target? Target { get; init; }

    public RunbookDefinition? Runbook { get; init; }

    public string? FromVersion { get; init; }

    public string ToVersion { get; init; } = "";

    public IReadOnlyList<PlannedPhase> Phases { get; init; } = [];

    public EnvMigration? EnvMigration { get; init; }

    public string? EnvDiff { get; init; }

    public IReadOnlyList<UserVerdict> Users { get; init; } = [];

    public long? DatabaseSize { get; init; }

    public string BackupDirectory { get; init; } = "";

    public TimeSpan? ExpectedDuration { get; init; }

    public PreflightRun? Preflight { get; init; }

    public RunPlanSnapshot Snapshot { get; init; } = new();
}

/// <summary>Builds the plan of a runbook on a target from what is there now.</summary>
public sealed class PlanBuilder(TargetService targets, FractalAccess access, PreflightService preflight, Persistence.AppDbContext db)
{
    public async Task<Plan> BuildAsync(int targetId, string runbookId, string? toVersion, string? oauthClient, CancellationToken ct, bool dataMigration = false)
    {
        var target = await targets.FindAsync(targetId, ct);
        var runbook = Runbooks.Find(runbookId);
        if (target is null || runbook is null)
        {
            return new Plan { Error = "No such target or runbook." };
        }

        var to = runbook.Id == Runbooks.Fractal216To2170 ? "2.17.0" : toVersion?.Trim() ?? "";
        if (!Pep440.IsValid(to) || !to.Contains('.', StringComparison.Ordinal))
        {
            return new Plan { Error = $"'{to}' is not a fractal-server version such as 2.17.1 (PEP 440, normalized)." };
        }

        try
        {
            var context = await access.OpenAsync(target, ct);
            var discovery = await FractalDiscovery.DiscoverAsync(context.Shell, TargetService.Location(target), ct);
            if (runbook.Id == Runbooks.FractalRelease && (discovery.InstalledVersion is null || discovery.InstalledVersion == to))
            {
                return new Plan
                {
                    Error = discovery.InstalledVersion is null ? "pip cannot say which fractal-server is installed, so there is nothing to upgrade from." : $"fractal-server {to} is already installed.",
                    Target = target,
                    Runbook = runbook,
                };
            }

            if (discovery.InstalledVersion is { } installed && !Pep440.IsValid(installed))
            {
                // It would reach the rollback's commands: only a well-formed version does.
                return new Plan { Error = $"pip reports fractal-server version '{installed}', which is not a PEP 440 version; check the target's package metadata.", Target = target, Runbook = runbook };
            }

            var users = MigrationRules.Classify(await context.Database.LoadUsersAsync(ct), context.Backend);
            var size = await context.Database.DatabaseSizeAsync(ct);
            var (envText, _) = await FractalDiscovery.ReadEnvFileAsync(context.Shell, TargetService.Location(target), ct);
            var migration = runbook.Id == Runbooks.Fractal216To2170 && envText is not null ? EnvMigrator.Migrate(envText, oauthClient) : null;
            var python = discovery.Python ?? target.PythonPath;
            var host = new FractalHostSettings(target.WorkingDirectory, python ?? "<python>", target.ServerUrl, target.StopCommand, target.StartCommand,
                target.StatusCommand, target.BackupDirectory, (target.PipOptions ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries));
            var phases = runbook.Phases.Select(p => new PlannedPhase(p, Commands(p.Key, host, to), Chosen: !p.Optional || dataMigration)).ToList();
            var head = await context.Database.AlembicVersionAsync(ct);
            return new Plan
            {
                Target = target,
                Runbook = runbook,
                FromVersion = discovery.InstalledVersion,
                ToVersion = to,
                Phases = phases,
                EnvMigration = migration,
                EnvDiff = migration?.NewText is { } text ? EnvMigrator.Diff(envText!, text) : null,
                Users = users,
                DatabaseSize = size,
                BackupDirectory = target.BackupDirectory,
                ExpectedDuration = await ExpectedDurationAsync(runbook.Id, ct),
                Preflight = await preflight.LatestAsync(targetId, ct),
                Snapshot = new RunPlanSnapshot
                {
                    Python = python,
                    MigratedUserIds = users.Where(u => u.Outcome == MigrationOutcome.Migrated).Select(u => u.User.Id).ToList(),
                    LeftOutUsers = users.Where(u => u.Outcome == MigrationOutcome.LeftOut).Select(u => u.User.Email).ToList(),
                    DatabaseSize = size,
                    AlembicHead = head,
                    DataMigration = dataMigration,
                },
            };
        }
        catch (Exception ex) when (ex is InvalidOperationException or SshConnectionException or HostKeyNotPinnedException or Npgsql.NpgsqlException or TimeoutException)
        {
            return new Plan { Error = "The plan needs the target: " + ex.Message, Target = target, Runbook = runbook };
        }
    }

    /// <summary>Average duration of earlier successful runs of this runbook, for the plan's estimate.</summary>
    public async Task<TimeSpan?> ExpectedDurationAsync(string runbookId, CancellationToken ct)
    {
        var earlier = await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.ToListAsync(
            db.Runs.Where(r => r.RunbookId == runbookId && r.State == RunState.Succeeded && r.StartedAt != null && r.EndedAt != null)
                .Select(r => new { r.StartedAt, r.EndedAt }), ct);
        return earlier.Count == 0 ? null : TimeSpan.FromSeconds(earlier.Average(r => (r.EndedAt!.Value - r.StartedAt!.Value).TotalSeconds));
    }

    /// <summary>The exact script a phase runs (no secrets: they travel as environment variables).</summary>
    private static string? Commands(string key, FractalHostSettings host, string to) => key switch
    {
        "backup" => FractalScripts.Backup(host, "fractal-<database>-run<id>.dump"),
        "stop" => FractalScripts.Stop(host),
        "pip-install" => FractalScripts.PipInstall(host, to),
        "set-db" => FractalScripts.SetDb(host),
        "update-db-data" => FractalScripts.UpdateDbData(host),
        "start" => FractalScripts.Start(host, to, TimeSpan.FromMinutes(2)),
        "verify-files" => FractalScripts.VerifyFiles(host, [".fractal_server.env.old", ".fractal_server.env", "<SLURM JSON>", "<pixi JSON if set>"]),
        "env-old" => $"cp .fractal_server.env .fractal_server.env.old (adding FRACTAL_SLURM_WORKER_PYTHON={host.Python} if missing), written atomically",
        "env-write" => "the migrated .fractal_server.env, written atomically (temp file + rename); the 2.16 file kept as .fractal_server.env.pre-2.17.0-run<id>",
        "preflight" => "every preflight check, run again",
        "post-checks" => "SELECT version_num FROM alembic_version; SELECT count(*) FROM resource; users expected to be migrated have a profile and their project_dir",
        _ => null,
    };
}
