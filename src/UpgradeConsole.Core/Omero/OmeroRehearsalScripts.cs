using UpgradeConsole.Core.Remote;
using UpgradeConsole.Core.Runbooks;

namespace UpgradeConsole.Core.Omero;

/// <summary>
/// The scripts of an OMERO rehearsal (issue 18). They read production (a dump of its database, its config.xml, the
/// release zip) and write only the scratch database (or throwaway cluster) and the scratch directory, where the new
/// release is unpacked with a copy of config.xml pointing at the scratch database: never the server, the installed
/// release, its config.xml or the production database. The product-neutral parts are <see cref="RehearsalScripts"/>'.
/// </summary>
public static partial class OmeroScripts
{
    /// <summary>The prefix of this product's rehearsal dumps (<see cref="RehearsalScripts.DumpPrefix"/>).</summary>
    public const string RehearsalProduct = "omero";

    /// <summary>What an OMERO rehearsal puts in its scratch directory: the new release, unpacked (its zip's uncompressed size).</summary>
    private static ScratchNeed UnpackedRelease(OmeroUpgradePlan p) => new(
        $"__uc_zip={ShellWords.Quote(p.ReleaseZip)}\n__uc_extrasize=0\n[ ! -f \"$__uc_zip\" ] || __uc_extrasize=$(unzip -Zt \"$__uc_zip\" | awk '{{print $3}}')",
        "the unpacked release ($__uc_extrasize bytes)");

    /// <summary>The production database's PG* (from config.xml) and a Python for the restore's free port: before any shared part.</summary>
    private static string RehearsalHeader(OmeroUpgradePlan p) => Header(p.Host) + "db_env\nPY=\"$VENV/bin/python\"\n";

    /// <summary>
    /// The rehearsal's first step: the room check (<see cref="RehearsalScripts.Room"/>), then a fresh verified
    /// <c>pg_dump -Fc</c> named <paramref name="freshFileName"/> in the backup directory, or the check of the borrowed one.
    /// </summary>
    public static string RehearsalDump(OmeroUpgradePlan p, RehearsalScratch scratch, string? freshFileName, string? borrowedPath, string? borrowedSha256) =>
        RehearsalHeader(p) + RehearsalScripts.Room(p.Host.BackupDirectory, scratch, freshDump: freshFileName is not null, UnpackedRelease(p))
        + (freshFileName is not null ? BackupBody(freshFileName) : RehearsalScripts.VerifyDump(borrowedPath!, borrowedSha256!));

    /// <summary>The scratch database on the production server or in a throwaway cluster (<see cref="RehearsalScripts.Restore"/>).</summary>
    public static string RehearsalRestore(OmeroUpgradePlan p, RehearsalScratch scratch, string dumpPath) =>
        RehearsalHeader(p) + RehearsalScripts.Restore(scratch, dumpPath);

    /// <summary>
    /// The plan the rehearsed phases run: the same upgrade, with OMERODIR the release unpacked in the scratch directory
    /// (its config.xml the scratch copy, so <c>db_env</c> reaches the scratch database), the zip the one in the scratch
    /// directory, and the scripts' output kept there.
    /// </summary>
    public static OmeroUpgradePlan Rehearsed(OmeroUpgradePlan p, RehearsalScratch scratch) =>
        p with
        {
            Host = p.Host with { ServerDirectory = scratch.Directory + "/" + p.ReleaseName, BackupDirectory = scratch.Directory },
            // The setup links production's zip there, or downloads it there when it is not on the host.
            ReleaseZip = scratch.Directory + "/" + System.IO.Path.GetFileName(p.ReleaseZip),
        };

    /// <summary>
    /// Makes the scratch directory: the new release unpacked from its zip (as the switch would, but not beside
    /// production), production's config.xml copied into it and pointed at the scratch database with <c>omero config
    /// set</c> (at the throwaway cluster when the restore made one). Production's tree and config.xml are only read.
    /// </summary>
    public static string RehearsalSetup(OmeroUpgradePlan p, RehearsalScratch scratch) => Header(p.Host) + ReleaseFunctions(p) + $$"""
        scratch={{ShellWords.QuotePath(scratch.Directory)}}
        release={{ShellWords.Quote(p.ReleaseName)}}
        db={{ShellWords.Quote(scratch.Database)}}
        umask 077
        mkdir -p -- "$scratch"
        # Again after an interruption: everything but the throwaway cluster the restore made.
        find "$scratch" -mindepth 1 -maxdepth 1 ! -name {{RehearsalScripts.ClusterDirectory}} -exec rm -rf -- {} +
        # The rehearsed phases read the zip from the scratch directory: a link to production's, or, when it is not on the
        # host, the zip fetched as the run's release phase would, but into the scratch directory (removed at the end),
        # never beside production.
        src="$scratch/$(basename -- "$zip")"
        if [ -f "$zip" ]; then
          ln -s -- "$zip" "$src"
        else
          [ -n "$url" ] || { echo "[rehearsal] the release zip $zip is not on the host and no download URL is configured; put it there and rehearse again"; exit 2; }
          download "$src.part" || exit 2
          mv -f -- "$src.part" "$src"
        fi
        echo "[rehearsal] unpacking $src into $scratch"
        unzip -q -d "$scratch" "$src"
        [ -d "$scratch/$release/sql" ] || { echo "[rehearsal] $src does not hold $release/sql: not an OMERO.server release"; exit 2; }
        mkdir -p -- "$scratch/$release/etc/grid"
        cp -- "$OMERODIR/etc/grid/config.xml" "$scratch/$release/etc/grid/config.xml"
        export OMERODIR="$scratch/$release"
        "$OMERO" config set omero.db.name "$db"
        if [ -f "$scratch/{{RehearsalScripts.ClusterDirectory}}/port" ]; then
          port=$(cat "$scratch/{{RehearsalScripts.ClusterDirectory}}/port")
          "$OMERO" config set omero.db.host 127.0.0.1
          "$OMERO" config set omero.db.port "$port"
          echo "[rehearsal] scratch directory $scratch with $release and a copy of config.xml pointing at $db in the throwaway cluster (127.0.0.1:$port)"
        else
          echo "[rehearsal] scratch directory $scratch with $release and a copy of config.xml pointing at $db"
        fi
        """;

    /// <summary>Removes the copy (<see cref="RehearsalScripts.Cleanup"/>): the scratch database or cluster, the directory, the rehearsal's dump.</summary>
    public static string RehearsalCleanup(OmeroUpgradePlan p, RehearsalScratch scratch, string dumpPrefix) =>
        RehearsalHeader(p) + RehearsalScripts.Cleanup(p.Host.BackupDirectory, scratch, dumpPrefix);
}
