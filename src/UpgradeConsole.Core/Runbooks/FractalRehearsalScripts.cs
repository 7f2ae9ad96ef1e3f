using System.Globalization;
using System.Text;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Core.Runbooks;

/// <summary>Where a rehearsal keeps its copy: a scratch database on the same server and a scratch directory (venv, config copies).</summary>
public sealed record RehearsalScratch(string Database, string Directory)
{
    /// <summary>PostgreSQL's limit on a database name, in bytes.</summary>
    private const int MaxNameBytes = 63;

    /// <summary>
    /// <c>&lt;db&gt;_rehearsal_&lt;run&gt;</c> (the production name shortened when the whole would exceed PostgreSQL's
    /// 63 bytes) and a directory beside the run's step directories. Never the production database's name.
    /// </summary>
    public static RehearsalScratch For(string productionDatabase, int runId, string runsDirectory, string remoteRunId)
    {
        var suffix = "_rehearsal_" + runId.ToString(CultureInfo.InvariantCulture);
        var name = productionDatabase;
        while (Encoding.UTF8.GetByteCount(name + suffix) > MaxNameBytes)
        {
            name = name[..^1];
        }

        return new RehearsalScratch(name + suffix, runsDirectory.TrimEnd('/') + "/" + remoteRunId + "-scratch");
    }
}

/// <summary>
/// The scripts of a Fractal rehearsal. They read production (a dump of its database, copies of its config files)
/// and write only the scratch database and directory: never the service, the installed package, the env file or
/// the production database. Names reach the shell through <see cref="ShellWords"/> and SQL through psql variables.
/// </summary>
public static partial class FractalScripts
{
    /// <summary>A rehearsal's dump file name: made by this rehearsal, so its cleanup removes it.</summary>
    public static string RehearsalDumpName(string database, int runId, int attempt) =>
        RehearsalDumpPrefix(database, runId) + attempt.ToString(CultureInfo.InvariantCulture) + ".dump";

    /// <summary>What every dump (and partial dump) of this rehearsal's attempts starts with.</summary>
    public static string RehearsalDumpPrefix(string database, int runId) =>
        string.Create(CultureInfo.InvariantCulture, $"fractal-{database}-rehearsal{runId}-a");

    /// <summary>Whether <paramref name="path"/> is a dump this rehearsal made (and removes), not one it borrowed.</summary>
    public static bool IsRehearsalDump(string path, int runId) =>
        Path.GetFileName(path).Contains(string.Create(CultureInfo.InvariantCulture, $"-rehearsal{runId}-"), StringComparison.Ordinal);

    /// <summary>Checks a borrowed dump again (present, the SHA-256 recorded at its verification, a readable archive) and reports it like a backup.</summary>
    public static string VerifyDump(FractalHostSettings s, string dumpPath, string sha256) => Header(s) + $$"""
        file={{ShellWords.Quote(dumpPath)}}
        expected={{ShellWords.Quote(sha256)}}
        start=$(date +%s%N)
        [ -s "$file" ] || { echo "[rehearsal] the dump $file is missing or empty"; exit 3; }
        sha=$(sha256sum -- "$file" | cut -d' ' -f1)
        if [ "$sha" != "$expected" ]; then echo "[rehearsal] $file changed since it was verified (SHA-256 $sha, recorded $expected)"; exit 3; fi
        pg_restore --list "$file" > /dev/null
        size=$(stat -c %s -- "$file")
        end=$(date +%s%N)
        echo "[rehearsal] reusing the verified dump $file (SHA-256 matches the one recorded)"
        echo "UC-BACKUP size=$size sha256=$sha ms=$(( (end - start) / 1000000 )) path=$file"
        """;

    /// <summary>
    /// Creates the scratch database on the production server (when the role may create databases) and restores the
    /// dump into it. Refuses, changing nothing, when the role may not, or when the scratch name is production's.
    /// </summary>
    public static string RehearsalRestore(FractalHostSettings s, RehearsalScratch scratch, string dumpPath) => Header(s) + $$"""
        scratch={{ShellWords.Quote(scratch.Database)}}
        dump={{ShellWords.Quote(dumpPath)}}
        if [ "$scratch" = "$PGDATABASE" ]; then echo "[rehearsal] the scratch database would be the production database; refusing"; exit 3; fi
        may=$(psql -X -At -v ON_ERROR_STOP=1 -c "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
        if [ "$may" != "t" ]; then
          echo "[rehearsal] the database role ${PGUSER:-} may not create databases (CREATEDB), so no scratch database can be made on this server"
          exit 4
        fi
        size=$(psql -X -At -v ON_ERROR_STOP=1 -c "SELECT pg_database_size(current_database())")
        datadir=$(psql -X -At -c "SELECT setting FROM pg_settings WHERE name = 'data_directory'" 2>/dev/null || true)
        if [ -n "$datadir" ] && [ -d "$datadir" ]; then
          free=$(( $(df -Pk -- "$datadir" | awk 'NR==2 {print $4}') * 1024 ))
          if [ "$free" -lt $(( size * 2 )) ]; then
            echo "[rehearsal] not enough room for the scratch database: $free bytes free where PostgreSQL keeps its data, the production database takes $size"
            exit 5
          fi
          echo "[rehearsal] room for the scratch database: $free bytes free, the production database takes $size"
        else
          echo "[rehearsal] the production database takes $size bytes; the server's free space is not visible to this role"
        fi
        echo "[rehearsal] creating the scratch database $scratch"
        printf '%s\n' 'DROP DATABASE IF EXISTS :"scratch";' 'CREATE DATABASE :"scratch";' | psql -X -q -v ON_ERROR_STOP=1 -v scratch="$scratch"
        start=$(date +%s%N)
        echo "[rehearsal] pg_restore of $dump into $scratch"
        pg_restore --no-owner --no-acl --exit-on-error -d "$scratch" "$dump"
        end=$(date +%s%N)
        echo "[rehearsal] restored in $(( (end - start) / 1000000 )) ms"
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
            rm -rf -- "$scratch"
            mkdir -p -- "$scratch"
            printf '%s' "$UC_ENV_NEW" > "$scratch/.fractal_server.env"
            printf '%s' "$UC_ENV_OLD" > "$scratch/.fractal_server.env.old"
            echo "[rehearsal] scratch directory $scratch with the env files pointing at the scratch database"

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

    /// <summary>
    /// Removes the scratch database (ending its sessions), the scratch directory and, when the rehearsal made it,
    /// its dump. Each part that is already gone is fine: it runs after a failure and again after an interruption.
    /// </summary>
    public static string RehearsalCleanup(FractalHostSettings s, RehearsalScratch scratch, string dumpPrefix) => Header(s) + $$"""
        scratch={{ShellWords.Quote(scratch.Database)}}
        dir={{ShellWords.QuotePath(scratch.Directory)}}
        backups={{ShellWords.QuotePath(s.BackupDirectory)}}
        if [ "$scratch" = "$PGDATABASE" ]; then echo "[cleanup] the scratch database would be the production database; refusing"; exit 3; fi
        printf '%s\n' 'DROP DATABASE IF EXISTS :"scratch" WITH (FORCE);' | psql -X -q -v ON_ERROR_STOP=1 -v scratch="$scratch"
        echo "[cleanup] dropped the scratch database $scratch"
        rm -rf -- "$dir"
        echo "[cleanup] removed $dir"
        for dump in "$backups"/{{ShellWords.Quote(dumpPrefix)}}*; do
          if [ -e "$dump" ]; then rm -f -- "$dump"; echo "[cleanup] removed the rehearsal's dump $dump"; fi
        done
        """;
}
