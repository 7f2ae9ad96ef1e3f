using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Fractal;

/// <summary>
/// The Fractal runbooks, each phase with everything about it: words, preview, execution, timeout,
/// idempotency, point of no return, rollback and required checks. The steps themselves are in
/// <see cref="FractalSteps"/>; the scripts in <see cref="FractalScripts"/>.
/// </summary>
public static class FractalRunbooks
{
    public const string Upgrade2170Id = "fractal-2.16-to-2.17.0";
    public const string ReleaseId = "fractal-release";

    private const string Product = FractalProduct.ProductId;

    /// <summary>How long start waits for /api/alive/ to report the new version (inside the step's own timeout).</summary>
    private static readonly TimeSpan AliveWait = TimeSpan.FromMinutes(2);

    private static FractalHostSettings Host(PlanInputs plan) => plan.FactsAs<FractalPlanFacts>().Host;

    // The rollback's actions, shared by the phases they undo and ordered by each runbook.
    private static readonly RollbackAction StopAgain = new("rb-stop", _ => "Stop fractal-server",
        PhaseExecution.Remote(c => new RemoteScript(FractalScripts.Stop(FractalSteps.Host(c)))), TimeSpan.FromMinutes(5));

    private static readonly RollbackAction RestoreDatabase = new("rb-restore-db", _ => "Restore the database from this run's dump",
        PhaseExecution.Remote(FractalSteps.RestoreDatabase), TimeSpan.FromHours(6))
    {
        Refuse = r => r.BackupPath is null ? "The database was changed but this run has no verified backup to restore." : null,
    };

    private static readonly RollbackAction PutEnvBack = new("rb-env", _ => "Put the 2.16 env file back",
        PhaseExecution.Builtin(FractalSteps.RestoreEnvAsync), TimeSpan.FromMinutes(5));

    private static readonly RollbackAction InstallPrevious = new("rb-pip", r => $"Install fractal-server {r.FromVersion} again",
        PhaseExecution.Remote(c => new RemoteScript(FractalScripts.PipInstall(FractalSteps.Host(c), c.Run.FromVersion))), TimeSpan.FromMinutes(30));

    private static readonly RollbackAction StartPrevious = new("rb-start", r => $"Start fractal-server {r.FromVersion}",
        PhaseExecution.Remote(c => new RemoteScript(FractalScripts.Start(FractalSteps.Host(c), c.Run.FromVersion, AliveWait))), TimeSpan.FromMinutes(5));

    private static readonly RollbackAction VerifyRestore = new("rb-verify", _ => "Check the restored database",
        PhaseExecution.Builtin(FractalSteps.VerifyRestoreAsync), TimeSpan.FromMinutes(5));

    private static readonly IReadOnlyList<RollbackAction> Undo = [StopAgain, RestoreDatabase, PutEnvBack, InstallPrevious, StartPrevious, VerifyRestore];

    private static PhaseDefinition Preflight(string title, string description, CheckRequirement required) =>
        new("preflight", title, description, PreflightGate.Execution)
        {
            Idempotent = true,
            Gate = true,
            RequiredChecks = required,
            Preview = _ => "every preflight check, run again",
        };

    private static PhaseDefinition Backup(string description, CheckRequirement required) =>
        new("backup", "Back up the database", description, PhaseExecution.Remote(FractalSteps.BackupAsync))
        {
            Idempotent = true,
            Timeout = TimeSpan.FromHours(6),
            RequiredChecks = required,
            Preview = p => FractalScripts.Backup(Host(p), "fractal-<database>-run<id>.dump"),
        };

    private static PhaseDefinition Stop(string description, CheckRequirement required) =>
        new("stop", "Stop fractal-server", description, PhaseExecution.Remote(c => new RemoteScript(FractalScripts.Stop(FractalSteps.Host(c)))))
        {
            Idempotent = true,
            Timeout = TimeSpan.FromMinutes(5),
            RollbackText = "Start the service again.",
            Rollback = [StopAgain, StartPrevious],
            RequiredChecks = required,
            Preview = p => FractalScripts.Stop(Host(p)),
        };

    private static PhaseDefinition PipInstall(string title, string description) =>
        new("pip-install", title, description, PhaseExecution.Remote(c => new RemoteScript(FractalScripts.PipInstall(FractalSteps.Host(c), c.Run.ToVersion))))
        {
            Idempotent = true,
            Timeout = TimeSpan.FromMinutes(30),
            RollbackText = "pip install the previous version again.",
            Rollback = [InstallPrevious],
            Preview = p => FractalScripts.PipInstall(Host(p), p.ToVersion),
            Rehearse = PhaseExecution.Remote(FractalRehearsal.PipInstall),
        };

    private static PhaseDefinition SetDb(string description) =>
        new("set-db", "Migrate the schema (fractalctl set-db)", description, PhaseExecution.Remote(c => new RemoteScript(FractalScripts.SetDb(FractalSteps.Host(c)))))
        {
            Idempotent = true,
            PointOfNoReturn = true,
            Timeout = TimeSpan.FromHours(2),
            RollbackText = "Restore the database from this run's verified dump.",
            Rollback = [RestoreDatabase, VerifyRestore],
            Preview = p => FractalScripts.SetDb(Host(p)),
            Rehearse = PhaseExecution.Remote(FractalRehearsal.SetDb),
        };

    private static PhaseDefinition UpdateDbData(string description, bool optional) =>
        new("update-db-data", "Migrate the data (fractalctl update-db-data)", description, PhaseExecution.Remote(c => new RemoteScript(FractalScripts.UpdateDbData(FractalSteps.Host(c)))))
        {
            // A second run fails and an interrupted one may have done part of its work.
            Idempotent = false,
            Optional = optional,
            MigratesData = true,
            Timeout = TimeSpan.FromHours(4),
            RollbackText = "Restore the database from this run's verified dump.",
            Rollback = [RestoreDatabase, VerifyRestore],
            Preview = p => FractalScripts.UpdateDbData(Host(p)),
            Rehearse = PhaseExecution.Remote(FractalRehearsal.UpdateDbData),
        };

    private static PhaseDefinition Start(string description) =>
        new("start", "Start fractal-server", description, PhaseExecution.Remote(c => new RemoteScript(FractalScripts.Start(FractalSteps.Host(c), c.Run.ToVersion, AliveWait))))
        {
            Idempotent = true,
            Timeout = TimeSpan.FromMinutes(5),
            Rollback = [StopAgain],
            Preview = p => FractalScripts.Start(Host(p), p.ToVersion, AliveWait),
        };

    // A rehearsal's own phases (issue 18, ADR 0022): the copy before, the report after, the cleanup always.
    private static readonly PhaseDefinition RehearsalDump = new("rehearsal-dump", "Take a verified dump (or check the recent one chosen)",
        "pg_dump -Fc of the production database, verified with pg_restore --list, size and SHA-256 recorded; or the recent verified dump of an earlier run, checked against its recorded SHA-256.",
        PhaseExecution.Remote(FractalRehearsal.Dump))
    {
        Idempotent = true,
        Timeout = TimeSpan.FromHours(6),
        Preview = p => FractalScripts.Backup(Host(p), "fractal-<database>-rehearsal<id>-a1.dump"),
    };

    private static readonly PhaseDefinition RehearsalRestore = new("rehearsal-restore", "Restore it into a scratch database",
        "CREATE DATABASE <db>_rehearsal_<run> on the same PostgreSQL server (the role must be allowed to create databases), then pg_restore --exit-on-error into it.",
        PhaseExecution.Remote(FractalRehearsal.Restore))
    {
        Idempotent = true,
        Timeout = TimeSpan.FromHours(6),
    };

    private static readonly PhaseDefinition RehearsalSetup = new("rehearsal-setup", "Prepare a scratch directory and venv",
        "A scratch directory with the migrated env file and the .old copy, both pointing at the scratch database, copies of the config files they name, and a new venv from the server's Python. Production's files are only read.",
        PhaseExecution.Remote(FractalRehearsal.SetupAsync))
    {
        Idempotent = true,
        Timeout = TimeSpan.FromMinutes(10),
    };

    private static readonly PhaseDefinition RehearsalCompare = new("rehearsal-compare", "Compare with the plan's prediction",
        "Every user's profile and project_dir, the users left out and the resource row, against what the plan predicted; a difference is a finding the preflight missed.",
        PhaseExecution.Builtin(FractalRehearsal.CompareAsync))
    {
        Idempotent = true,
        // Two reads of the scratch copy (10,000 users take seconds); held to it, so a read that never answers fails the rehearsal.
        Timeout = TimeSpan.FromMinutes(10),
    };

    private static readonly PhaseDefinition RehearsalCleanup = new("rehearsal-cleanup", "Remove the scratch copy",
        "DROP DATABASE <db>_rehearsal_<run> WITH (FORCE), remove the scratch directory and the rehearsal's own dump. Runs also after a failure.",
        PhaseExecution.Remote(FractalRehearsal.Cleanup))
    {
        Idempotent = true,
        Timeout = TimeSpan.FromMinutes(30),
    };

    /// <summary>The fractal-server 2.16 → 2.17.0 upgrade, in the guide's order (fractal-2.17.md §3.5).</summary>
    public static RunbookDefinition Upgrade2170 { get; } = new(
        Upgrade2170Id,
        "fractal-server 2.16 → 2.17.0",
        Product,
        [
            Preflight("Preflight again", "Every preflight check must pass (an Admin may override a failing check with a written reason).", CheckRequirement.All),
            new("env-old", "Keep the old env file", "Copy .fractal_server.env to .fractal_server.env.old and make sure it holds FRACTAL_SLURM_WORKER_PYTHON; update-db-data reads it.",
                PhaseExecution.Builtin(FractalSteps.EnvOldAsync))
            {
                Idempotent = true,
                RollbackText = "The .old copy is left in place; it changes nothing for 2.16.",
                Preview = p => $"cp .fractal_server.env .fractal_server.env.old (adding FRACTAL_SLURM_WORKER_PYTHON={Host(p).Python} if missing), written atomically",
            },
            Backup("pg_dump -Fc with the env file's credentials (PGPASSWORD in the step's environment), verified with pg_restore --list, size and SHA-256 recorded.", CheckRequirement.None),
            Stop("Run the target's stop command and wait until the status command says it is down.", CheckRequirement.None),
            new("env-write", "Write the 2.17.0 env file", "Write the migrated .fractal_server.env atomically; the previous version is kept beside it.",
                PhaseExecution.Builtin(FractalSteps.EnvWriteAsync))
            {
                Idempotent = true,
                RollbackText = "Put the kept 2.16 env file back.",
                Rollback = [PutEnvBack],
                Preview = _ => "the migrated .fractal_server.env, written atomically (temp file + rename); the 2.16 file kept as .fractal_server.env.pre-2.17.0-run<id>",
            },
            new("verify-files", "Check the working directory", "The working directory must hold .fractal_server.env.old, .fractal_server.env, the SLURM JSON and the pixi JSON if configured.",
                PhaseExecution.Remote(FractalSteps.VerifyFilesAsync))
            {
                Idempotent = true,
                Timeout = TimeSpan.FromMinutes(1),
                Preview = p => FractalScripts.VerifyFiles(Host(p), [".fractal_server.env.old", ".fractal_server.env", "<SLURM JSON>", "<pixi JSON if set>"]),
            },
            PipInstall("Install fractal-server 2.17.0", "pip install fractal-server==2.17.0 in the server's Python environment."),
            SetDb("The point of no return: from here a rollback restores the database from the backup."),
            UpdateDbData("Answers its five questions. Never re-run automatically: a second run fails and an interrupted one needs a person to decide.", optional: false),
            Start("Run the start command and wait (bounded) until /api/alive/ reports 2.17.0."),
            new("post-checks", "Check the result", "alembic head 83bc2ad3ffcc, one resource, every migrated user has a profile and their project_dir; the users left out are listed.",
                PhaseExecution.Builtin(FractalSteps.PostChecksAsync))
            {
                Idempotent = true,
                Preview = _ => "SELECT version_num FROM alembic_version; SELECT count(*) FROM resource; users expected to be migrated have a profile and their project_dir",
            },
            new("checklist", "Manual checks", "People check what a machine cannot; the run completes when every item is ticked.", PhaseExecution.Manual) { Idempotent = true },
        ],
        [
            "fractal-web is upgraded to 1.21 with FRACTAL_DEFAULT_GROUP_NAME=All and the new FRACTAL_RUNNER_BACKEND",
            "The resource and profile names look right in the admin area",
            "Login works, including OAuth if it is used",
            "Users are linked to the right profiles",
            "A job runs end to end",
            "Task collection works",
            "The OME-Zarr viewer shows data",
        ])
    {
        RollbackOrder = Undo,
        FixedToVersion = "2.17.0",
        AsksForOAuthClient = true,
        Rehearsal = new RehearsalDefinition([RehearsalDump, RehearsalRestore, RehearsalSetup], [RehearsalCompare], RehearsalCleanup),
    };

    /// <summary>
    /// An ordinary fractal-server release (the deployment guide): back up, stop, install, set-db,
    /// optionally update-db-data, start. It needs a backup, a controllable service and no other run; the
    /// other checks are about the 2.16 → 2.17.0 migration and are shown, not required.
    /// </summary>
    public static RunbookDefinition Release { get; } = new(
        ReleaseId,
        "fractal-server release upgrade",
        Product,
        [
            Preflight("Preflight", "The target answers and the version is known.", CheckRequirement.Of(CommonChecks.ActiveRun)),
            Backup("pg_dump -Fc, verified with pg_restore --list, size and SHA-256 recorded.", CheckRequirement.Of(FractalCheckIds.BackupSpace, FractalCheckIds.PgDump)),
            Stop("Run the stop command and wait until it is down.", CheckRequirement.Of(FractalCheckIds.ServiceStatus)),
            PipInstall("Install the new version", "pip install fractal-server==<version>."),
            SetDb("Point of no return."),
            UpdateDbData("Only when the release notes call for it (chosen on the plan). Answers its questions; never re-run automatically.", optional: true),
            Start("Start and wait until /api/alive/ reports the new version."),
        ],
        [])
    {
        RollbackOrder = Undo,
        Rehearsal = new RehearsalDefinition([RehearsalDump, RehearsalRestore, RehearsalSetup], [], RehearsalCleanup),
    };

    public static IReadOnlyList<RunbookDefinition> All { get; } = [Upgrade2170, Release];
}
