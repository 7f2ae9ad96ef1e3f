namespace UpgradeConsole.Core.Omero;

/// <summary>How a phase undoes itself when the run is rolled back.</summary>
public enum OmeroRollback
{
    /// <summary>Nothing to undo (read-only, or undone by an earlier phase's rollback).</summary>
    None,

    /// <summary>Point OMERO.server back at the old tree with its config.xml (<see cref="OmeroScripts.RollbackSwitch"/>).</summary>
    SwitchBack,

    /// <summary>Restore the run's verified dump (<see cref="OmeroScripts.RestoreDatabase"/>), then switch back.</summary>
    RestoreDatabase,
}

/// <summary>One phase of the OMERO.server runbook: what the plan shows, what runs, and how it behaves on retry and rollback.</summary>
/// <remarks>
/// <para>Script: The exact script the phase runs (its preview); no secret is in it.</para>
/// <para>Idempotent: May run again after an unknown outcome.</para>
/// <para>PointOfNoReturn: From this phase on, rolling back needs the database restored.</para>
/// <para>RequiredChecks: Preflight check ids that must not fail before the run starts.</para>
/// <para>Manual: A checklist a person ticks instead of a script.</para>
/// </remarks>
public sealed record OmeroPhase(
    string Key,
    string Title,
    string Explanation,
    string? Script,
    TimeSpan Timeout,
    bool Idempotent,
    bool PointOfNoReturn,
    OmeroRollback Rollback,
    IReadOnlyList<string> RequiredChecks,
    IReadOnlyList<string>? Manual = null);

/// <summary>
/// The runbook "OMERO.server 5.x → 5.y" as data, in the upgrade guide's order. A run driver only walks
/// this list: run <see cref="OmeroPhase.Script"/> through the remote step engine, honour the flags, and
/// on failure run <see cref="OmeroScripts.Diagnostics"/> and the rollback the failed phase names.
/// </summary>
public static class OmeroRunbook
{
    public const string Name = "OMERO.server 5.x → 5.y";

    public static IReadOnlyList<OmeroPhase> Phases(OmeroUpgradePlan p)
    {
        var phases = new List<OmeroPhase>
        {
            new("release", "Fetch and check the release zip", "Checks the release zip is whole and is this release (unzip -t); downloads it first from the configured URL when it is not on the host yet.",
                OmeroScripts.FetchRelease(p), TimeSpan.FromHours(2), true, false, OmeroRollback.None, ["omero.release"]),
            new("precheck", "Precheck the database", "Runs the new release's precheck SQL (it changes nothing and ends in ROLLBACK); it must print the READY line.",
                OmeroScripts.Precheck(p), TimeSpan.FromMinutes(30), true, false, OmeroRollback.None, ["omero.path", "omero.postgres", "omero.encoding"]),
            new("backup", "Dump the database", "pg_dump -Fc as the OMERO database user, verified with pg_restore --list, size and SHA-256.",
                OmeroScripts.Backup(p), TimeSpan.FromHours(12), true, false, OmeroRollback.None, ["omero.backup-room"]),
            new("stop", "Stop OMERO.server", "omero admin stop, then omero admin status must say it is down.",
                OmeroScripts.Stop(p), TimeSpan.FromMinutes(10), true, false, OmeroRollback.SwitchBack, []),
            new("keep-config", "Keep etc/grid/config.xml", "Copies config.xml and the symlink's target into the run's directory.",
                OmeroScripts.KeepConfig(p), TimeSpan.FromMinutes(2), true, false, OmeroRollback.SwitchBack, []),
            new("switch", "Unpack the new release and switch the symlink", "Unzips the release beside the old one, points OMERO.server at it and copies config.xml.",
                OmeroScripts.Switch(p), TimeSpan.FromMinutes(30), true, false, OmeroRollback.SwitchBack, ["omero.release"]),
        };
        if (p.Steps.Count > 0)
        {
            phases.Add(new("upgrade-sql", "Upgrade the database", $"Runs {string.Join(", then ", p.Steps.Select(s => s.ScriptPath))} as the OMERO database user; each must print its SUCCESSFULLY UPGRADED line. A script whose version the database already has is not run again.",
                OmeroScripts.UpgradeSql(p), TimeSpan.FromHours(24), true, true, OmeroRollback.RestoreDatabase, ["omero.precheck"]));
            if (p.Vacuum)
            {
                phases.Add(new("vacuum", "VACUUM FULL VERBOSE ANALYZE", "Optional, chosen on the plan: reclaims space after the upgrade.",
                    OmeroScripts.Vacuum(p), TimeSpan.FromHours(24), true, false, OmeroRollback.RestoreDatabase, []));
            }
        }

        var afterSql = p.Steps.Count > 0 ? OmeroRollback.RestoreDatabase : OmeroRollback.SwitchBack;
        phases.AddRange(
        [
            new("merge-scripts", "Merge custom scripts", "Copies scripts under the old lib/scripts that the new release lacks; lists, never overwrites, the others.",
                OmeroScripts.MergeScripts(p), TimeSpan.FromMinutes(10), true, false, afterSql, []),
            new("pip", "Upgrade omero-py", "pip install --upgrade omero-py in the server's environment.",
                OmeroScripts.PipOmeroPy(p), TimeSpan.FromMinutes(30), true, false, afterSql, []),
            new("certificates", "Certificates", "omero-certificates, drop the two IceSSL protocol settings, omero certificates.",
                OmeroScripts.Certificates(p), TimeSpan.FromMinutes(10), true, false, afterSql, []),
            new("bioformats-cache", "Delete BioFormatsCache", "The memo files are invalid for the new release.",
                OmeroScripts.DeleteBioFormatsCache(p), TimeSpan.FromHours(2), true, false, afterSql, []),
            new("start", "Start OMERO.server", "omero admin start waits until the server answers.",
                OmeroScripts.Start(p), TimeSpan.FromMinutes(20), true, false, afterSql, []),
            new("post-checks", "Post-checks", "omero admin status, the database version and the server version.",
                OmeroScripts.PostChecks(p), TimeSpan.FromMinutes(5), true, false, afterSql, []),
            new("checklist", "Check by hand", "What only a person can confirm.", null, TimeSpan.FromDays(7), true, false, OmeroRollback.None, [],
                ["Log in with OMERO.web and OMERO.insight", "Open an image", "Import a file", "Run a script"]),
        ]);
        return phases;
    }
}
