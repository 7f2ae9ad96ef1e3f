using System.Globalization;
using System.Text;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Core.Runbooks;

/// <summary>Where a rehearsal keeps its copy: a scratch database on the same server and a scratch directory (venv or unpacked release, config copies).</summary>
public sealed record RehearsalScratch(string Database, string Directory)
{
    /// <summary>PostgreSQL's limit on a database name, in bytes.</summary>
    private const int MaxNameBytes = 63;

    /// <summary>Where the scratch directories live when the steps run as a service user: that user's home.</summary>
    public const string ServiceUserDirectory = "~/.upgradeconsole/rehearsals";

    /// <summary>
    /// <c>&lt;db&gt;_rehearsal_&lt;run&gt;</c> (the production name shortened when the whole would exceed PostgreSQL's
    /// 63 bytes) and a directory beside the run's step directories, or, when the steps run as a service user
    /// (<paramref name="asServiceUser"/>), in that user's home: the step directories belong to the SSH user and are
    /// closed to every other, so the service user could not write there. Never the production database's name.
    /// </summary>
    public static RehearsalScratch For(string productionDatabase, int runId, string runsDirectory, string remoteRunId, bool asServiceUser = false)
    {
        var suffix = "_rehearsal_" + runId.ToString(CultureInfo.InvariantCulture);
        var name = productionDatabase;
        while (Encoding.UTF8.GetByteCount(name + suffix) > MaxNameBytes)
        {
            name = name[..^1];
        }

        return new RehearsalScratch(name + suffix, (asServiceUser ? ServiceUserDirectory : runsDirectory.TrimEnd('/')) + "/" + remoteRunId + "-scratch");
    }
}

/// <summary>
/// What a product puts in a rehearsal's scratch directory besides a throwaway cluster, for the room check: bash lines
/// that set <c>__uc_extrasize</c> (bytes), and the words naming it (inside double quotes; may use the lines' variables).
/// </summary>
public sealed record ScratchNeed(string SizeScript, string What);

/// <summary>
/// The product-neutral parts of a rehearsal (issue 18, ADR 0022), shared by Fractal's and OMERO's: the room check,
/// a borrowed dump's check, the restore into a scratch database or a throwaway cluster, and the cleanup. Each is a
/// script body: the product's header goes before it and exports PG* for the production database (never changed here:
/// it is only dumped). Names reach the shell through <see cref="ShellWords"/> and SQL through psql variables.
/// </summary>
public static class RehearsalScripts
{
    /// <summary>What every dump (and partial dump) of a rehearsal's attempts starts with: made by it, so its cleanup removes it.</summary>
    public static string DumpPrefix(string product, string database, int runId) =>
        string.Create(CultureInfo.InvariantCulture, $"{product}-{database}-rehearsal{runId}-a");

    /// <summary>A rehearsal's dump file name for one attempt.</summary>
    public static string DumpName(string product, string database, int runId, int attempt) =>
        DumpPrefix(product, database, runId) + attempt.ToString(CultureInfo.InvariantCulture) + ".dump";

    /// <summary>Whether <paramref name="path"/> is a dump this rehearsal made (and removes), not one it borrowed.</summary>
    public static bool IsRehearsalDump(string path, int runId) =>
        Path.GetFileName(path).Contains(string.Create(CultureInfo.InvariantCulture, $"-rehearsal{runId}-"), StringComparison.Ordinal);

    /// <summary>
    /// Refuses (exit 5, before anything is made) unless each filesystem has room for what the rehearsal puts there:
    /// the fresh dump (about the production database's size) in the backup directory, the restored copy (the same
    /// again) where PostgreSQL keeps its data, or in the scratch directory when the role may not create databases
    /// (a throwaway cluster), and what the product puts in the scratch directory (<paramref name="scratchNeed"/>).
    /// Needs on one filesystem add up. Says which user the steps run as. Needs PG* of the production database.
    /// </summary>
    public static string Room(string backupDirectory, RehearsalScratch scratch, bool freshDump, ScratchNeed scratchNeed) => $$"""
        echo "[rehearsal] steps run as $(id -un)"
        __uc_backups={{ShellWords.QuotePath(backupDirectory)}}
        __uc_scratch={{ShellWords.QuotePath(scratch.Directory)}}
        __uc_fresh={{(freshDump ? "1" : "")}}
        __uc_dbsize=$(psql -X -At -v ON_ERROR_STOP=1 -c "SELECT pg_database_size(current_database())")
        {{scratchNeed.SizeScript}}
        __uc_may=$(psql -X -At -v ON_ERROR_STOP=1 -c "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
        __uc_datadir=$(psql -X -At -c "SELECT setting FROM pg_settings WHERE name = 'data_directory'" 2>/dev/null || true)
        declare -A __uc_need=() __uc_what=() __uc_where=()
        __uc_add() {
          local p="$1"
          while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done
          local dev; dev=$(stat -c %d -- "$p")
          __uc_need[$dev]=$(( ${__uc_need[$dev]:-0} + $2 ))
          __uc_what[$dev]="${__uc_what[$dev]:+${__uc_what[$dev]} + }$3"
          __uc_where[$dev]="$p"
        }
        [ -z "$__uc_fresh" ] || __uc_add "$__uc_backups" "$__uc_dbsize" "the dump ($__uc_dbsize bytes, the production database's size)"
        if [ "$__uc_may" = "t" ]; then
          if [ -n "$__uc_datadir" ] && [ -d "$__uc_datadir" ]; then
            __uc_add "$__uc_datadir" "$__uc_dbsize" "the restored copy ($__uc_dbsize bytes)"
          else
            echo "[rehearsal] the room for the restored copy ($__uc_dbsize bytes) on the database server is not visible to this role"
          fi
        else
          __uc_add "$__uc_scratch" "$__uc_dbsize" "the restored copy in a throwaway cluster ($__uc_dbsize bytes)"
        fi
        __uc_add "$__uc_scratch" "$__uc_extrasize" "{{scratchNeed.What}}"
        __uc_short=
        for __uc_dev in "${!__uc_need[@]}"; do
          __uc_free=$(stat -f -c '%a * %S' -- "${__uc_where[$__uc_dev]}")
          __uc_free=$(( __uc_free ))
          if [ "$__uc_free" -lt "${__uc_need[$__uc_dev]}" ]; then
            echo "[rehearsal] not enough room: ${__uc_free} bytes free on the filesystem of ${__uc_where[$__uc_dev]}, the rehearsal needs ${__uc_need[$__uc_dev]} there for ${__uc_what[$__uc_dev]}"
            __uc_short=1
          else
            echo "[rehearsal] room on the filesystem of ${__uc_where[$__uc_dev]}: ${__uc_free} bytes free for ${__uc_what[$__uc_dev]}"
          fi
        done
        if [ -n "$__uc_short" ]; then echo "[rehearsal] nothing was made; free some room (or choose other directories for the target) and rehearse again"; exit 5; fi

        """;

    /// <summary>Checks a borrowed dump again (present, the SHA-256 recorded at its verification, a readable archive) and reports it like a backup.</summary>

    public static string VerifyDump(string dumpPath, string sha256) => $$"""
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

    /// <summary>The throwaway cluster's directory inside the scratch directory (kept by the setup, removed by the cleanup).</summary>
    public const string ClusterDirectory = "pgcluster";

    /// <summary>What the restore step says when it made a throwaway cluster: its port on 127.0.0.1.</summary>
    public const string ClusterMarker = "UC-CLUSTER port=";

    /// <summary>
    /// Creates the scratch database on the production server when the role may create databases, and restores the
    /// dump into it. When it may not: a throwaway PostgreSQL cluster of the server's major version (its initdb, from
    /// the server binaries on this host) in the scratch directory, listening on a free port of 127.0.0.1 and on a Unix
    /// socket in its own directory, its superuser the production role with the production password (scram), and the
    /// scratch database in it (it says <see cref="ClusterMarker"/>). Refused with the reason when there are no such
    /// binaries. Refuses, changing nothing, when the scratch name is production's. Needs PG* of the production database
    /// and <c>$PY</c> (a Python, to find a free port).
    /// </summary>
    public static string Restore(RehearsalScratch scratch, string dumpPath) => $$"""
        scratch={{ShellWords.Quote(scratch.Database)}}
        scratchdir={{ShellWords.QuotePath(scratch.Directory)}}
        dump={{ShellWords.Quote(dumpPath)}}
        if [ "$scratch" = "$PGDATABASE" ]; then echo "[rehearsal] the scratch database would be the production database; refusing"; exit 3; fi
        may=$(psql -X -At -v ON_ERROR_STOP=1 -c "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
        size=$(psql -X -At -v ON_ERROR_STOP=1 -c "SELECT pg_database_size(current_database())")
        if [ "$may" != "t" ]; then
          echo "[rehearsal] the database role ${PGUSER:-} may not create databases (CREATEDB): a throwaway PostgreSQL cluster in the scratch directory instead"
          major=$(psql -X -At -v ON_ERROR_STOP=1 -c "SELECT current_setting('server_version_num')::int / 10000")
          bindir=
          for d in "/usr/lib/postgresql/$major/bin" "/usr/pgsql-$major/bin" "$(pg_config --bindir 2>/dev/null || true)" "$(dirname -- "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"; do
            if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_restore" ]; then
              v=$("$d/postgres" --version | grep -oE '[0-9]+' | head -n1)
              if [ "$v" = "$major" ]; then bindir=$d; break; fi
            fi
          done
          if [ -z "$bindir" ]; then
            echo "[rehearsal] no PostgreSQL $major server binaries (initdb, pg_ctl, postgres) on this host for a throwaway cluster; give the role CREATEDB or install the server package, then rehearse again"
            exit 4
          fi
          if [ -z "${PGPASSWORD:-}" ]; then
            echo "[rehearsal] the env file has no POSTGRES_PASSWORD, which the throwaway cluster's superuser would log in with; refusing"
            exit 4
          fi
          cluster="$scratchdir/{{ClusterDirectory}}"
          umask 077
          if [ -f "$cluster/bindir" ] && [ -f "$cluster/data/postmaster.pid" ]; then "$(cat "$cluster/bindir")/pg_ctl" -D "$cluster/data" -m immediate -w stop > /dev/null 2>&1 || true; fi
          rm -rf -- "$cluster"
          mkdir -p -- "$cluster"
          printf '%s\n' "$bindir" > "$cluster/bindir"
          printf '%s\n' "$PGPASSWORD" > "$cluster/pw"
          echo "[rehearsal] initdb of a PostgreSQL $major cluster in $cluster ($bindir)"
          "$bindir/initdb" -D "$cluster/data" -U "${PGUSER:-$(id -un)}" --pwfile="$cluster/pw" -A scram-sha-256 -E UTF8 --locale=C --no-sync > "$cluster/initdb.log" 2>&1 \
            || { cat "$cluster/initdb.log"; rm -f -- "$cluster/pw"; exit 4; }
          rm -f -- "$cluster/pw"
          started=
          for attempt in 1 2 3 4 5; do
            port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
            socketdir=$(printf '%s' "$cluster" | sed "s/'/''/g")
            # A Unix socket path has at most 107 bytes: TCP on 127.0.0.1 alone when the directory is deeper than that allows.
            if [ "${#cluster}" -gt 90 ]; then socketdir=; fi
            printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n" "$port" "$socketdir" > "$cluster/data/postgresql.auto.conf"
            if "$bindir/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -t 60 start > /dev/null; then started=1; break; fi
            echo "[rehearsal] the cluster did not start on port $port; another port"
          done
          if [ -z "$started" ]; then tail -n 20 "$cluster/server.log"; exit 4; fi
          printf '%s\n' "$port" > "$cluster/port"
          echo "[rehearsal] the throwaway cluster listens on 127.0.0.1:$port and in $cluster"
          echo "{{ClusterMarker}}$port"
          export PGHOST=127.0.0.1 PGPORT=$port PATH="$bindir:$PATH"
          PGDATABASE=postgres; export PGDATABASE
        else
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
    /// Removes the scratch database (ending its sessions), the scratch directory and, when the rehearsal made it,
    /// its dump (<paramref name="dumpPrefix"/>…). Needs PG* of the production database. Each part that is already gone is fine: it runs after a failure and again after an interruption.
    /// </summary>
    public static string Cleanup(string backupDirectory, RehearsalScratch scratch, string dumpPrefix) => $$"""
        scratch={{ShellWords.Quote(scratch.Database)}}
        dir={{ShellWords.QuotePath(scratch.Directory)}}
        backups={{ShellWords.QuotePath(backupDirectory)}}
        if [ "$scratch" = "$PGDATABASE" ]; then echo "[cleanup] the scratch database would be the production database; refusing"; exit 3; fi
        cluster="$dir/{{ClusterDirectory}}"
        if [ -d "$cluster" ]; then
          if [ -f "$cluster/bindir" ] && [ -f "$cluster/data/postmaster.pid" ]; then
            "$(cat "$cluster/bindir")/pg_ctl" -D "$cluster/data" -m immediate -w -t 60 stop > /dev/null 2>&1 || echo "[cleanup] the throwaway cluster was not running"
          fi
          # pg_ctl may have found no server (a reboot): its pid file names nothing alive then.
          if [ -f "$cluster/data/postmaster.pid" ]; then
            pid=$(head -n1 "$cluster/data/postmaster.pid")
            if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$cluster/data"; then kill -KILL "$pid" 2>/dev/null || true; fi
          fi
          echo "[cleanup] stopped the throwaway cluster in $cluster"
        else
          printf '%s\n' 'DROP DATABASE IF EXISTS :"scratch" WITH (FORCE);' | psql -X -q -v ON_ERROR_STOP=1 -v scratch="$scratch"
          echo "[cleanup] dropped the scratch database $scratch"
        fi
        rm -rf -- "$dir"
        echo "[cleanup] removed $dir"
        for dump in "$backups"/{{ShellWords.Quote(dumpPrefix)}}*; do
          if [ -e "$dump" ]; then rm -f -- "$dump"; echo "[cleanup] removed the rehearsal's dump $dump"; fi
        done
        """;
}
