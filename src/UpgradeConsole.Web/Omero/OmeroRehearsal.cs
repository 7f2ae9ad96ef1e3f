using UpgradeConsole.Core.Omero;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Omero;

/// <summary>
/// How the OMERO runbook is rehearsed (issue 18, on Fractal's model): a verified dump (fresh, or a recent one of an
/// earlier run), restored into <c>&lt;db&gt;_rehearsal_&lt;run&gt;</c> (or a throwaway cluster when the role may not
/// create databases), the new release unpacked in a scratch directory with a copy of config.xml pointing at it; then
/// the runbook's own precheck and upgrade SQL (and VACUUM when chosen) against that copy; then the cleanup, which
/// runs also after a failure. Nothing here stops the server or changes its release, its config.xml or its database.
/// </summary>
internal static class OmeroRehearsal
{
    private static string Database(PhaseContext c) => OmeroRunbooks.Snapshot(c).Database is { Length: > 0 } name ? name : "omero";

    public static RehearsalScratch Scratch(PhaseContext c) =>
        RehearsalScratch.For(Database(c), c.Run.Id, c.Target.RunsDirectory, c.Run.RemoteRunId, asServiceUser: !string.IsNullOrWhiteSpace(c.Target.ServiceUser));

    /// <summary>The plan the rehearsed phases run: the scratch release and config (<see cref="OmeroScripts.Rehearsed"/>).</summary>
    public static OmeroUpgradePlan Plan(PhaseContext c) => OmeroScripts.Rehearsed(OmeroRunbooks.PlanOf(c), Scratch(c));

    public static RemoteScript Dump(PhaseContext c)
    {
        var run = c.Run;
        var borrowed = run.BackupPath is not null && run.BackupSha256 is not null && !RehearsalScripts.IsRehearsalDump(run.BackupPath, run.Id);
        var script = borrowed
            ? OmeroScripts.RehearsalDump(OmeroRunbooks.PlanOf(c), Scratch(c), null, run.BackupPath!, run.BackupSha256!)
            : OmeroScripts.RehearsalDump(OmeroRunbooks.PlanOf(c), Scratch(c), RehearsalScripts.DumpName(OmeroScripts.RehearsalProduct, Database(c), run.Id, c.Phase.Attempt), null, null);
        return DumpSteps.Recording(c, script, null, "dump", backup =>
            PhaseOutcome.Done($"{(borrowed ? "reused " : "")}{backup.Path}, {backup.Size} bytes, SHA-256 {backup.Sha256[..12]}…") with
            {
                Facts = new { path = backup.Path, size = backup.Size, sha256 = backup.Sha256, milliseconds = backup.Milliseconds, reused = borrowed },
            });
    }

    public static RemoteScript Restore(PhaseContext c) => c.Run.BackupPath is { } dump
        ? RehearsalSteps.Restore(OmeroScripts.RehearsalRestore(OmeroRunbooks.PlanOf(c), Scratch(c), dump), null, Scratch(c).Database)
        : RemoteScript.Refused("The rehearsal has no verified dump to restore.");

    public static RemoteScript Setup(PhaseContext c) => new(OmeroScripts.RehearsalSetup(OmeroRunbooks.PlanOf(c), Scratch(c)));

    public static RemoteScript Cleanup(PhaseContext c) =>
        new(OmeroScripts.RehearsalCleanup(OmeroRunbooks.PlanOf(c), Scratch(c), RehearsalScripts.DumpPrefix(OmeroScripts.RehearsalProduct, Database(c), c.Run.Id)));
}
