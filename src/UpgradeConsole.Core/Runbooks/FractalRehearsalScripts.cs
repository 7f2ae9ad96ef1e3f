using System.Globalization;
using System.Text;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Core.Runbooks;

/// <summary>
/// The scripts of a Fractal rehearsal. They read production (a dump of its database, copies of its config files)
/// and write only the scratch database and directory: never the service, the installed package, the env file or
/// the production database. Names reach the shell through <see cref="ShellWords"/> and SQL through psql variables.
/// </summary>
public static partial class FractalScripts
{
    /// <summary>A rehearsal's dump file name: made by this rehearsal, so its cleanup removes it.</summary>
    public static string RehearsalDumpName(string database, int runId, int attempt) => RehearsalScripts.DumpName("fractal", database, runId, attempt);

    /// <summary>What every dump (and partial dump) of this rehearsal's attempts starts with.</summary>
    public static string RehearsalDumpPrefix(string database, int runId) => RehearsalScripts.DumpPrefix("fractal", database, runId);

    /// <summary>What a Fractal rehearsal puts in its scratch directory: a venv, about the production venv's size.</summary>
    private static readonly ScratchNeed Venv = new(
        "__uc_venv=$(cd -- \"$(dirname -- \"$PY\")/..\" && pwd -P)\n__uc_extrasize=$(( $(du -sk -- \"$__uc_venv\" | cut -f1) * 1024 ))",
        "the scratch venv ($__uc_extrasize bytes, the size of $__uc_venv)");

    /// <summary>
    /// The rehearsal's first step: a fresh dump of production (or a check of the borrowed one), after a check that
    /// there is room for everything the rehearsal will make (<see cref="RehearsalScripts.Room"/>), so nothing is made when it would not fit.
    /// </summary>
    public static string RehearsalDump(FractalHostSettings s, RehearsalScratch scratch, string? freshFileName, string? borrowedPath, string? borrowedSha256) =>
        Header(s) + RehearsalScripts.Room(s.BackupDirectory, scratch, freshDump: freshFileName is not null, Venv)
        + (freshFileName is not null ? BackupBody(s, freshFileName) : RehearsalScripts.VerifyDump(borrowedPath!, borrowedSha256!));

    /// <summary>The scratch database on the production server or in a throwaway cluster (<see cref="RehearsalScripts.Restore"/>).</summary>
    public static string RehearsalRestore(FractalHostSettings s, RehearsalScratch scratch, string dumpPath) => Header(s) + RehearsalScripts.Restore(scratch, dumpPath);

    /// <summary>
    /// For a step against the scratch copy: when the restore made a throwaway cluster, POSTGRES_HOST and POSTGRES_PORT
    /// point at it in the process environment (which Fractal reads before the env file).
    /// </summary>
    public static string ClusterEnvironment(RehearsalScratch scratch) => $$"""
        __uc_cluster={{ShellWords.QuotePath(scratch.Directory)}}/{{RehearsalScripts.ClusterDirectory}}
        if [ -f "$__uc_cluster/port" ]; then export POSTGRES_HOST=127.0.0.1 POSTGRES_PORT="$(cat "$__uc_cluster/port")"; echo "[rehearsal] against the throwaway cluster on 127.0.0.1:$POSTGRES_PORT"; fi

        """;

    /// <summary>
    /// Makes the scratch directory: the env files (passed in the step's environment as <c>UC_ENV_NEW</c> and
    /// <c>UC_ENV_OLD</c>, they hold secrets), copies of the relative config files the old env names, and a fresh venv
    /// made from the server's Python. Production's working directory is only read.
    /// </summary>
    public static string RehearsalSetup(FractalHostSettings s, RehearsalScratch scratch, IEnumerable<string> relativeFiles)
    {
        var script = new StringBuilder(Header(s));
        script.Append("scratch=").Append(ShellWords.QuotePath(scratch.Directory)).Append('\n');
        script.Append("""
            umask 077
            mkdir -p -- "$scratch"
            # Again after an interruption: everything but the throwaway cluster the restore made.
            find "$scratch" -mindepth 1 -maxdepth 1 ! -name pgcluster -exec rm -rf -- {} +
            if [ -f "$scratch/pgcluster/port" ]; then
              port=$(cat "$scratch/pgcluster/port")
              for f in NEW OLD; do
                v="UC_ENV_$f"
                printf '%s' "${!v}" | grep -vE '^[[:space:]]*(export[[:space:]]+)?POSTGRES_(HOST|PORT)[[:space:]]*=' > "$scratch/env.$f" || true
                printf 'POSTGRES_HOST=127.0.0.1\nPOSTGRES_PORT=%s\n' "$port" >> "$scratch/env.$f"
              done
              mv -f -- "$scratch/env.NEW" "$scratch/.fractal_server.env"
              mv -f -- "$scratch/env.OLD" "$scratch/.fractal_server.env.old"
              echo "[rehearsal] scratch directory $scratch with the env files pointing at the scratch database in the throwaway cluster (127.0.0.1:$port)"
            else
              printf '%s' "$UC_ENV_NEW" > "$scratch/.fractal_server.env"
              printf '%s' "$UC_ENV_OLD" > "$scratch/.fractal_server.env.old"
              echo "[rehearsal] scratch directory $scratch with the env files pointing at the scratch database"
            fi

            """);
        foreach (var file in relativeFiles)
        {
            var q = ShellWords.Quote(file);
            script.Append(CultureInfo.InvariantCulture, $"if [ -f {q} ]; then cp --parents -- {q} \"$scratch\"/; echo \"[rehearsal] copied \"{q}; else echo \"[rehearsal] not found in the working directory: \"{q}; fi\n");
        }

        script.Append("""
            echo "[rehearsal] creating a scratch virtual environment"
            "$PY" -m venv -- "$scratch/venv"
            "$scratch/venv/bin/python" -m pip --version
            """);
        return script.ToString();
    }

    /// <summary>Removes the copy (<see cref="RehearsalScripts.Cleanup"/>).</summary>
    public static string RehearsalCleanup(FractalHostSettings s, RehearsalScratch scratch, string dumpPrefix) => Header(s) + RehearsalScripts.Cleanup(s.BackupDirectory, scratch, dumpPrefix);
}
