using System.Text.Json;
using UpgradeConsole.Core.Omero;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Omero;

/// <summary>
/// The "OMERO.server 5.x → 5.y" runbook on the runbook model. The phases' words, timeouts, idempotency,
/// point of no return and required checks are the Core's (<see cref="OmeroRunbook"/>); each phase's
/// preview and execution write the Core's script for the plan (<see cref="OmeroScripts"/>); this file adds
/// the gate, what the run records (backup, database version) and the rollback actions.
/// </summary>
public static class OmeroRunbooks
{
    public const string UpgradeId = "omero-upgrade";

    private const string PreviewRunId = "run-ID";

    /// <summary>A plan with every optional part, to read each phase's description from the Core (the real plan decides the scripts).</summary>
    private static readonly OmeroUpgradePlan Every = new(
        new OmeroHostSettings("/opt/omero/server/OMERO.server", "/opt/omero/venv", "/backups", []), "/opt/omero/server/OMERO.server-5.6.3-ice36.zip", "5.6.3",
        new("OMERO5.3", 0), [new(new("OMERO5.3", 0), new("OMERO5.4", 0))], PreviewRunId, Vacuum: true);

    /// <summary>What the plan recorded (fixed once the run is planned).</summary>
    public static OmeroPlanSnapshot Snapshot(PhaseContext c) =>
        JsonSerializer.Deserialize<OmeroPlanSnapshot>(c.Run.PlanJson, JsonSerializerOptions.Web) ?? new OmeroPlanSnapshot();

    /// <summary>The upgrade plan of this run, written again from its snapshot and the target's settings.</summary>
    public static OmeroUpgradePlan PlanOf(PhaseContext c)
    {
        var s = Snapshot(c);
        var current = OmeroDbVersion.Parse(s.CurrentDb) ?? throw new InvalidOperationException($"The run's plan has no database version ('{s.CurrentDb}').");
        var target = OmeroReleases.SchemaOf(s.TargetVersion) ?? throw new InvalidOperationException($"No database schema is known for OMERO.server {s.TargetVersion}.");
        return new OmeroUpgradePlan(OmeroRuntime.HostSettings(c.Target), s.ReleaseZip, s.TargetVersion, current, OmeroReleases.Path(current, target) ?? [],
            c.Run.RemoteRunId, s.Vacuum, s.OmeroPyMinimum, DownloadUrl: s.DownloadUrl);
    }

    /// <summary>The Core's script of a phase for a plan; null when the plan has no such phase (no SQL to run).</summary>
    private static string? ScriptOf(OmeroUpgradePlan plan, string key) => OmeroRunbook.Phases(plan).FirstOrDefault(p => p.Key == key)?.Script;

    /// <summary>The phase's script for the plan; the optional VACUUM is shown whether chosen or not (the plan marks it skipped).</summary>
    private static string Preview(PlanInputs p, string key)
    {
        var plan = p.FactsAs<OmeroPlanFacts>().Plan;
        return ScriptOf(plan with { Vacuum = plan.Steps.Count > 0 }, key) ?? "(nothing to run: the database schema does not change for this release)";
    }

    /// <summary>Runs the phase's script; on failure <c>omero admin diagnostics</c> goes into the run's log, then the script's exit code stands.</summary>
    private static string WithDiagnostics(OmeroUpgradePlan plan, string script) =>
        "set +e\n(\n" + script + "\n)\nrc=$?\nif [ \"$rc\" -ne 0 ]; then\n(\n" + OmeroScripts.Diagnostics(plan) + "\n)\nfi\nexit \"$rc\"\n";

    private static PhaseExecution Script(string key, bool diagnostics = false) => PhaseExecution.Remote(c =>
    {
        var plan = PlanOf(c);
        var script = ScriptOf(plan, key) ?? "echo '[sql] the database schema does not change for this release: no upgrade script runs'\n";
        return new RemoteScript(diagnostics ? WithDiagnostics(plan, script) : script);
    });

    private static PhaseExecution Backup => PhaseExecution.Remote(c =>
    {
        var run = c.Run;
        OmeroBackupRecord? backup = null;
        return new RemoteScript(OmeroScripts.Backup(PlanOf(c)))
        {
            OnLine = line => backup ??= OmeroScripts.ParseBackup(line),
            Succeeded = async () =>
            {
                if (backup is null)
                {
                    return PhaseOutcome.Failed("The backup step did not report the dump's size and checksum.");
                }

                (run.BackupPath, run.BackupSize, run.BackupSha256, run.BackupMilliseconds) = (backup.Path, backup.Size, backup.Sha256, backup.Milliseconds);
                await c.SaveAsync();
                return PhaseOutcome.Done($"{backup.Path}, {backup.Size} bytes, SHA-256 {backup.Sha256[..12]}…, {backup.Milliseconds} ms");
            },
        };
    });

    /// <summary>The release zip: checked (downloaded first if planned so); its size and SHA-256 go into the phase's audit event.</summary>
    private static PhaseExecution FetchRelease => PhaseExecution.Remote(c =>
    {
        var plan = PlanOf(c);
        (long Size, string Sha256)? release = null;
        return new RemoteScript(OmeroScripts.FetchRelease(plan))
        {
            OnLine = line => release = OmeroScripts.ParseRelease(line) ?? release,
            Succeeded = () => Task.FromResult(release is { } r
                ? PhaseOutcome.Done($"{plan.ReleaseZip}, {r.Size} bytes, SHA-256 {r.Sha256[..12]}…{(plan.DownloadUrl is null ? "" : ", downloaded from " + plan.DownloadUrl)}") with
                {
                    Facts = new { zip = plan.ReleaseZip, size = r.Size, sha256 = r.Sha256, downloadedFrom = plan.DownloadUrl },
                }
                : PhaseOutcome.Failed("The release step did not report the zip's size and checksum.")),
        };
    });

    /// <summary>The upgrade SQL of <paramref name="planOf"/>'s plan: done only when the database reports the target version afterwards.</summary>
    private static PhaseExecution UpgradeSql(Func<PhaseContext, OmeroUpgradePlan> planOf) => PhaseExecution.Remote(c =>
    {
        var plan = planOf(c);
        OmeroDbVersion? now = null;
        return new RemoteScript(ScriptOf(plan, "upgrade-sql") ?? OmeroScripts.UpgradeSql(plan))
        {
            OnLine = line => now = OmeroScripts.ParseDbVersionLine(line) ?? now,
            Succeeded = () => Task.FromResult(now == plan.TargetDb
                ? PhaseOutcome.Done($"the database is at {now}")
                : PhaseOutcome.Failed($"After the upgrade SQL the database reports {now?.ToString() ?? "no version"}, expected {plan.TargetDb}.")),
        };
    });

    // The rollback's actions, in the order they run: point OMERO.server back (it stops the server), restore the database, start the old server.
    private static readonly RollbackAction SwitchBack = new("rb-switch", r => $"Point OMERO.server back at {r.FromVersion} with its config.xml",
        PhaseExecution.Remote(c => new RemoteScript(OmeroScripts.RollbackSwitch(PlanOf(c)))), TimeSpan.FromMinutes(10));

    private static readonly RollbackAction RestoreDatabase = new("rb-restore-db", _ => "Restore the database from this run's verified dump",
        PhaseExecution.Remote(c => c.Run.BackupPath is null
            ? RemoteScript.Refused("This run has no verified backup to restore.")
            : new RemoteScript(OmeroScripts.RestoreDatabase(PlanOf(c), c.Run.BackupPath, c.Run.BackupSha256))), TimeSpan.FromHours(12))
    {
        Refuse = r => r.BackupPath is null ? "The database was changed but this run has no verified backup to restore." : null,
    };

    private static readonly RollbackAction StartPrevious = new("rb-start", r => $"Start OMERO.server {r.FromVersion}",
        PhaseExecution.Remote(c => new RemoteScript(OmeroScripts.Start(PlanOf(c)))), TimeSpan.FromMinutes(20));

    private static IReadOnlyList<RollbackAction> Undo(OmeroRollback rollback, string key) => (rollback, key) switch
    {
        // Stopping and keeping config.xml are undone by starting again: nothing was switched yet.
        (_, "stop" or "keep-config") => [StartPrevious],
        (OmeroRollback.SwitchBack, _) => [SwitchBack, StartPrevious],
        (OmeroRollback.RestoreDatabase, _) => [SwitchBack, RestoreDatabase, StartPrevious],
        _ => [],
    };

    private static string? UndoText(IReadOnlyList<RollbackAction> undo) =>
        undo.Contains(RestoreDatabase) ? "Point OMERO.server back at the old release, restore the database from this run's verified dump (its version checked), start the old server."
        : undo.Contains(SwitchBack) ? "Point OMERO.server back at the old release with its config.xml and start it."
        : undo.Count > 0 ? "Start the old server again."
        : null;

    private static PhaseExecution ExecutionOf(string key) => key switch
    {
        "backup" => Backup,
        "release" => FetchRelease,
        "upgrade-sql" => UpgradeSql(PlanOf),
        "checklist" => PhaseExecution.Manual,
        _ => Script(key, diagnostics: key is "start" or "post-checks"),
    };

    /// <summary>
    /// The database phases, rehearsed (issue 18): the same scripts with OMERODIR the release unpacked in the rehearsal's
    /// scratch directory, whose copy of config.xml points at the scratch database (<see cref="OmeroRehearsal.Plan"/>).
    /// </summary>
    private static PhaseExecution? RehearsalOf(string key) => key switch
    {
        "precheck" => PhaseExecution.Remote(c => new RemoteScript(OmeroScripts.Precheck(OmeroRehearsal.Plan(c)))),
        "vacuum" => PhaseExecution.Remote(c => new RemoteScript(OmeroScripts.Vacuum(OmeroRehearsal.Plan(c)))),
        "upgrade-sql" => UpgradeSql(OmeroRehearsal.Plan),
        _ => null,
    };

    // A rehearsal's own phases (issue 18, ADR 0022): the copy before the rehearsed ones, the cleanup always.
    private static readonly PhaseDefinition RehearsalDump = new("rehearsal-dump", "Take a verified dump (or check the recent one chosen)",
        "pg_dump -Fc of the production database as the OMERO database user, verified with pg_restore --list, size and SHA-256 recorded; or the recent verified dump of an earlier run, checked against its recorded SHA-256. First, the room for the dump, the restored copy and the unpacked release is checked.",
        PhaseExecution.Remote(OmeroRehearsal.Dump))
    {
        Idempotent = true,
        Timeout = TimeSpan.FromHours(12),
        Preview = _ => "the room check, then pg_dump -Fc into the backup directory as omero-<database>-rehearsal<id>-a1.dump, verified",
    };

    private static readonly PhaseDefinition RehearsalRestore = new("rehearsal-restore", "Restore it into a scratch database",
        "CREATE DATABASE <db>_rehearsal_<run> on the same PostgreSQL server when the OMERO role may create databases, else a throwaway PostgreSQL cluster in the scratch directory; then pg_restore --exit-on-error into it.",
        PhaseExecution.Remote(OmeroRehearsal.Restore))
    {
        Idempotent = true,
        Timeout = TimeSpan.FromHours(12),
    };

    private static readonly PhaseDefinition RehearsalSetup = new("rehearsal-setup", "Unpack the new release in a scratch directory",
        "Unzips the release into a scratch directory (not beside production), copies config.xml into it and points the copy at the scratch database with omero config set. Production's tree and config.xml are only read.",
        PhaseExecution.Remote(OmeroRehearsal.Setup))
    {
        Idempotent = true,
        Timeout = TimeSpan.FromMinutes(30),
    };

    private static readonly PhaseDefinition RehearsalCleanup = new("rehearsal-cleanup", "Remove the scratch copy",
        "DROP DATABASE <db>_rehearsal_<run> WITH (FORCE) (or stop the throwaway cluster), remove the scratch directory and the rehearsal's own dump. Runs also after a failure.",
        PhaseExecution.Remote(OmeroRehearsal.Cleanup))
    {
        Idempotent = true,
        Timeout = TimeSpan.FromMinutes(30),
    };

    private static PhaseDefinition Phase(OmeroPhase core)
    {
        var undo = Undo(core.Rollback, core.Key);
        return new PhaseDefinition(core.Key, core.Title, core.Explanation, ExecutionOf(core.Key))
        {
            Idempotent = core.Idempotent,
            PointOfNoReturn = core.PointOfNoReturn,
            Timeout = core.Timeout,
            Optional = core.Key == "vacuum",
            MigratesData = core.Key == "upgrade-sql",
            RequiredChecks = core.RequiredChecks.Count == 0 ? CheckRequirement.None : CheckRequirement.Of([.. core.RequiredChecks]),
            Rollback = undo,
            RollbackText = UndoText(undo),
            Preview = core.Manual is null ? p => Preview(p, core.Key) : _ => null,
            Rehearse = RehearsalOf(core.Key),
        };
    }

    /// <summary>OMERO.server 5.x → 5.y (the upgrade guide's order, runbooks.md).</summary>
    public static RunbookDefinition Upgrade { get; } = new(
        UpgradeId,
        OmeroRunbook.Name,
        OmeroProduct.ProductId,
        [
            new("preflight", "Preflight again", "Every check runs again (the precheck SQL included); the ones a phase needs must pass or an Admin overrides them with a written reason.",
                PreflightGate.Execution)
            {
                Idempotent = true,
                Gate = true,
                RequiredChecks = CheckRequirement.Of(Core.Runbooks.CommonChecks.ActiveRun, Core.Runbooks.CommonChecks.TargetReachable, "omero.discovery"),
                Preview = _ => "every preflight check, run again (discovery, PostgreSQL version, encoding, the precheck SQL, backup room, release zip or its download, omero admin status)",
            },
            .. OmeroRunbook.Phases(Every).Select(Phase),
        ],
        [.. OmeroRunbook.Phases(Every).Single(p => p.Manual is not null).Manual!])
    {
        RollbackOrder = [SwitchBack, RestoreDatabase, StartPrevious],
        Rehearsal = new RehearsalDefinition([RehearsalDump, RehearsalRestore, RehearsalSetup], [], RehearsalCleanup),
    };

    public static IReadOnlyList<RunbookDefinition> All { get; } = [Upgrade];
}
