namespace UpgradeConsole.Core.Runbooks;

public enum PhaseKind
{
    /// <summary>Done by the dashboard itself (checks, file edits through the connection, database queries).</summary>
    Builtin,

    /// <summary>A script started detached on the target and followed by the remote engine.</summary>
    Remote,

    /// <summary>People tick a checklist.</summary>
    Manual,
}

/// <summary>
/// One phase of a runbook: what it does, whether running it twice is harmless, and what undoes it.
/// A <see cref="Gate"/> phase (the preflight) must pass for any later phase to run: it is never
/// marked done; only an Admin's override of each failing check, with a reason, lets it pass.
/// </summary>
public sealed record PhaseDefinition(
    string Key,
    string Title,
    string Description,
    PhaseKind Kind,
    bool Idempotent,
    bool PointOfNoReturn = false,
    string? Rollback = null,
    bool Optional = false,
    bool Gate = false);

/// <summary>An ordered list of phases that upgrades a product from one version to another.</summary>
public sealed record RunbookDefinition(
    string Id,
    string Title,
    string Product,
    IReadOnlyList<PhaseDefinition> Phases,
    IReadOnlyList<string> Checklist,
    IReadOnlySet<string>? RequiredChecks = null)
{
    public int PointOfNoReturnIndex => Phases.ToList().FindIndex(p => p.PointOfNoReturn);

    /// <summary>Whether a failing preflight check stops this runbook (all do, unless it names the ones it needs).</summary>
    public bool Requires(string checkId) => RequiredChecks?.Contains(checkId) ?? true;
}

public static class Runbooks
{
    public const string Fractal216To2170 = "fractal-2.16-to-2.17.0";
    public const string FractalRelease = "fractal-release";

    /// <summary>The fractal-server 2.16 → 2.17.0 upgrade, in the guide's order (fractal-2.17.md §3.5).</summary>
    public static RunbookDefinition Fractal2170 { get; } = new(
        Fractal216To2170,
        "fractal-server 2.16 → 2.17.0",
        "fractal-server",
        [
            new("preflight", "Preflight again", "Every preflight check must pass (an Admin may override a failing check with a written reason).", PhaseKind.Builtin, Idempotent: true, Gate: true),
            new("env-old", "Keep the old env file", "Copy .fractal_server.env to .fractal_server.env.old and make sure it holds FRACTAL_SLURM_WORKER_PYTHON; update-db-data reads it.", PhaseKind.Builtin, Idempotent: true, Rollback: "The .old copy is left in place; it changes nothing for 2.16."),
            new("backup", "Back up the database", "pg_dump -Fc with the env file's credentials (PGPASSWORD in the step's environment), verified with pg_restore --list, size and SHA-256 recorded.", PhaseKind.Remote, Idempotent: true),
            new("stop", "Stop fractal-server", "Run the target's stop command and wait until the status command says it is down.", PhaseKind.Remote, Idempotent: true, Rollback: "Start the service again."),
            new("env-write", "Write the 2.17.0 env file", "Write the migrated .fractal_server.env atomically; the previous version is kept beside it.", PhaseKind.Builtin, Idempotent: true, Rollback: "Put the kept 2.16 env file back."),
            new("verify-files", "Check the working directory", "The working directory must hold .fractal_server.env.old, .fractal_server.env, the SLURM JSON and the pixi JSON if configured.", PhaseKind.Remote, Idempotent: true),
            new("pip-install", "Install fractal-server 2.17.0", "pip install fractal-server==2.17.0 in the server's Python environment.", PhaseKind.Remote, Idempotent: true, Rollback: "pip install the previous version again."),
            new("set-db", "Migrate the schema (fractalctl set-db)", "The point of no return: from here a rollback restores the database from the backup.", PhaseKind.Remote, Idempotent: true, PointOfNoReturn: true, Rollback: "Restore the database from this run's verified dump."),
            new("update-db-data", "Migrate the data (fractalctl update-db-data)", "Answers its five questions. Never re-run automatically: a second run fails and an interrupted one needs a person to decide.", PhaseKind.Remote, Idempotent: false, Rollback: "Restore the database from this run's verified dump."),
            new("start", "Start fractal-server", "Run the start command and wait (bounded) until /api/alive/ reports 2.17.0.", PhaseKind.Remote, Idempotent: true),
            new("post-checks", "Check the result", "alembic head 83bc2ad3ffcc, one resource, every migrated user has a profile and their project_dir; the users left out are listed.", PhaseKind.Builtin, Idempotent: true),
            new("checklist", "Manual checks", "People check what a machine cannot; the run completes when every item is ticked.", PhaseKind.Manual, Idempotent: true),
        ],
        [
            "fractal-web is upgraded to 1.21 with FRACTAL_DEFAULT_GROUP_NAME=All and the new FRACTAL_RUNNER_BACKEND",
            "The resource and profile names look right in the admin area",
            "Login works, including OAuth if it is used",
            "Users are linked to the right profiles",
            "A job runs end to end",
            "Task collection works",
            "The OME-Zarr viewer shows data",
        ]);

    /// <summary>An ordinary fractal-server release (the deployment guide): back up, stop, install, set-db, optionally update-db-data, start.</summary>
    public static RunbookDefinition FractalReleaseUpgrade { get; } = new(
        FractalRelease,
        "fractal-server release upgrade",
        "fractal-server",
        [
            new("preflight", "Preflight", "The target answers and the version is known.", PhaseKind.Builtin, Idempotent: true, Gate: true),
            new("backup", "Back up the database", "pg_dump -Fc, verified with pg_restore --list, size and SHA-256 recorded.", PhaseKind.Remote, Idempotent: true),
            new("stop", "Stop fractal-server", "Run the stop command and wait until it is down.", PhaseKind.Remote, Idempotent: true, Rollback: "Start the service again."),
            new("pip-install", "Install the new version", "pip install fractal-server==<version>.", PhaseKind.Remote, Idempotent: true, Rollback: "pip install the previous version again."),
            new("set-db", "Migrate the schema (fractalctl set-db)", "Point of no return.", PhaseKind.Remote, Idempotent: true, PointOfNoReturn: true, Rollback: "Restore the database from this run's verified dump."),
            new("update-db-data", "Migrate the data (fractalctl update-db-data)", "Only when the release notes call for it (chosen on the plan). Answers its questions; never re-run automatically.", PhaseKind.Remote, Idempotent: false, Rollback: "Restore the database from this run's verified dump.", Optional: true),
            new("start", "Start fractal-server", "Start and wait until /api/alive/ reports the new version.", PhaseKind.Remote, Idempotent: true),
        ],
        [],
        // An ordinary release needs a backup, a controllable service and no other run; the other
        // checks are about the 2.16 → 2.17.0 migration and are shown, not required.
        new HashSet<string>(StringComparer.Ordinal) { "backup.space", "backup.pg_dump", "service.status", "runs.active" });

    public static IReadOnlyList<RunbookDefinition> All { get; } = [Fractal2170, FractalReleaseUpgrade];

    public static RunbookDefinition? Find(string id) => All.FirstOrDefault(r => r.Id == id);
}
