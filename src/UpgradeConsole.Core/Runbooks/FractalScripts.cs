using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Core.Runbooks;

/// <summary>What the scripts of a Fractal run need to know about the target.</summary>
public sealed record FractalHostSettings(
    string WorkingDirectory,
    string Python,
    string ServerUrl,
    string StopCommand,
    string StartCommand,
    string StatusCommand,
    string BackupDirectory,
    IReadOnlyList<string> PipOptions);

/// <summary>A verified dump, as the backup step reports it.</summary>
public sealed record BackupRecord(string Path, long Size, string Sha256, long Milliseconds);

/// <summary>
/// The bash scripts of the Fractal runbooks. Values a person typed reach them only through
/// <see cref="ShellWords"/>; the service commands are scripts by design (an Admin writes them) and
/// are inserted as they are. Secrets never appear here: they arrive as environment variables.
/// </summary>
public static partial class FractalScripts
{
    /// <summary>The environment (PGHOST…, PGPASSWORD) for scripts that talk to the target's database; values from the env file.</summary>
    public static Dictionary<string, string> PostgresEnvironment(IReadOnlyDictionary<string, string?> env)
    {
        var result = new Dictionary<string, string>
        {
            ["PGHOST"] = env.GetValueOrDefault("POSTGRES_HOST") is { Length: > 0 } h ? h : "localhost",
            ["PGPORT"] = env.GetValueOrDefault("POSTGRES_PORT") is { Length: > 0 } p ? p : "5432",
            ["PGDATABASE"] = env.GetValueOrDefault("POSTGRES_DB") ?? "",
        };
        if (env.GetValueOrDefault("POSTGRES_USER") is { Length: > 0 } user)
        {
            result["PGUSER"] = user;
        }

        if (env.GetValueOrDefault("POSTGRES_PASSWORD") is { } password)
        {
            result["PGPASSWORD"] = password;
        }

        return result;
    }

    private static string Header(FractalHostSettings s) =>
        $"set -euo pipefail\ncd -- {ShellWords.QuotePath(s.WorkingDirectory)}\nPY={ShellWords.QuotePath(s.Python)}\nFRACTALCTL=\"$(dirname -- \"$PY\")/fractalctl\"\n";

    public static string Backup(FractalHostSettings s, string fileName) => Header(s) + BackupBody(s, fileName);

    private static string BackupBody(FractalHostSettings s, string fileName) => $$"""
        dir={{ShellWords.QuotePath(s.BackupDirectory)}}
        mkdir -p -- "$dir"
        file="$dir"/{{ShellWords.Quote(fileName)}}
        echo "[backup] pg_dump -Fc of $PGDATABASE on $PGHOST:$PGPORT into $file"
        {{DumpAndVerify}}
        """;

    /// <summary>
    /// <c>pg_dump -Fc</c> of libpq's database into <c>$file</c> (through <c>$file.partial</c>), verified with
    /// <c>pg_restore --list</c>, then the line <see cref="ParseBackup"/> reads: size, SHA-256, milliseconds, path.
    /// </summary>
    public const string DumpAndVerify = """
        start=$(date +%s%N)
        pg_dump -Fc --no-password -f "$file.partial"
        mv -f -- "$file.partial" "$file"
        echo "[backup] verifying: pg_restore --list"
        pg_restore --list "$file" > /dev/null
        size=$(stat -c %s -- "$file")
        if [ "$size" -le 0 ]; then echo "[backup] the dump is empty"; exit 1; fi
        sha=$(sha256sum -- "$file" | cut -d' ' -f1)
        end=$(date +%s%N)
        echo "UC-BACKUP size=$size sha256=$sha ms=$(( (end - start) / 1000000 )) path=$file"
        """;

    public static BackupRecord? ParseBackup(string line)
    {
        var m = BackupLine().Match(line);
        return m.Success
            ? new BackupRecord(m.Groups["path"].Value, long.Parse(m.Groups["size"].Value, CultureInfo.InvariantCulture), m.Groups["sha"].Value, long.Parse(m.Groups["ms"].Value, CultureInfo.InvariantCulture))
            : null;
    }

    public static string Stop(FractalHostSettings s) => Header(s) + $$"""
        echo "[stop] stopping fractal-server"
        {{s.StopCommand}}
        for i in $(seq 1 60); do
          if ( {{s.StatusCommand}} ) > /dev/null 2>&1; then sleep 1; else echo "[stop] fractal-server is down"; exit 0; fi
        done
        echo "[stop] fractal-server still runs 60 s after the stop command"
        exit 1
        """;

    public static string Start(FractalHostSettings s, string expectedVersion, TimeSpan wait) => Header(s) + $$"""
        echo "[start] starting fractal-server"
        {{s.StartCommand}}
        url={{ShellWords.Quote(s.ServerUrl.TrimEnd('/') + "/api/alive/")}}
        expected={{ShellWords.Quote(expectedVersion)}}
        for i in $(seq 1 {{Math.Max(1, (int)wait.TotalSeconds / 2).ToString(CultureInfo.InvariantCulture)}}); do
          version=$("$PY" -c 'import json, sys, urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1], timeout=5))["version"])' "$url" 2>/dev/null || true)
          if [ "$version" = "$expected" ]; then echo "[start] /api/alive/ reports $version"; exit 0; fi
          sleep 2
        done
        echo "[start] /api/alive/ did not report $expected in {{((int)wait.TotalSeconds).ToString(CultureInfo.InvariantCulture)}} s (last answer: ${version:-none})"
        exit 1
        """;

    public static string VerifyFiles(FractalHostSettings s, IEnumerable<string> files)
    {
        var script = new StringBuilder(Header(s)).Append("missing=0\n");
        foreach (var file in files)
        {
            var q = ShellWords.Quote(file);
            script.Append(CultureInfo.InvariantCulture, $"if [ -f {q} ]; then echo \"[verify] present: \"{q}; else echo \"[verify] MISSING: \"{q}; missing=1; fi\n");
        }

        return script.Append("exit $missing\n").ToString();
    }

    public static string PipInstall(FractalHostSettings s, string version)
    {
        var options = string.Join(' ', s.PipOptions.Select(ShellWords.Quote));
        return Header(s) + $$"""
            echo "[pip] installing "{{ShellWords.Quote("fractal-server==" + version)}}
            "$PY" -m pip install --disable-pip-version-check {{options}} {{ShellWords.Quote("fractal-server==" + version)}}
            installed=$("$PY" -m pip show fractal-server | sed -n 's/^Version: //p')
            echo "[pip] installed: $installed"
            [ "$installed" = {{ShellWords.Quote(version)}} ]
            """;
    }

    public static string SetDb(FractalHostSettings s) => Header(s) + """
        echo "[set-db] fractalctl set-db"
        "$FRACTALCTL" set-db
        """;

    /// <summary>update-db-data, answering its five questions with "yes".</summary>
    public static string UpdateDbData(FractalHostSettings s) => Header(s) + """
        echo "[update-db-data] fractalctl update-db-data (answering its five questions)"
        printf 'yes\nyes\nyes\nyes\nyes\n' | "$FRACTALCTL" update-db-data
        """;

    /// <summary>
    /// Restores the database from this run's dump (ADR 0007): the dump must still have the SHA-256
    /// recorded when it was verified; other sessions of the server's role are ended (a role cannot end a
    /// superuser's session, and an idle one holds no lock that matters); the public schema is dropped and
    /// recreated, so tables 2.17 added go too, which <c>pg_restore --clean</c> would leave behind; then
    /// <c>pg_restore --exit-on-error</c>. A lock that other sessions hold makes it fail after
    /// <c>lock_timeout</c> with a clear error rather than hang; DROP and CREATE run in one transaction.
    /// </summary>
    public static string RestoreDatabase(FractalHostSettings s, string dumpPath, string? expectedSha256 = null) => Header(s) + $$"""
        dump={{ShellWords.Quote(dumpPath)}}
        expected={{ShellWords.Quote(expectedSha256 ?? "")}}
        echo "[restore] checking the dump"
        [ -s "$dump" ] || { echo "[restore] $dump is missing or empty" >&2; exit 3; }
        if [ -n "$expected" ]; then
          actual=$(sha256sum "$dump" | cut -d' ' -f1)
          if [ "$actual" != "$expected" ]; then
            echo "[restore] $dump changed since it was verified (SHA-256 $actual, recorded $expected); not restoring it" >&2
            exit 3
          fi
          echo "[restore] SHA-256 matches the one recorded at backup"
        fi
        pg_restore --list "$dump" > /dev/null
        echo "[restore] ending other sessions of $PGDATABASE"
        psql -X -q -At -v ON_ERROR_STOP=1 -c "SELECT 'ended ' || count(pg_terminate_backend(pid)) || ' session(s)' FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename = current_user;"
        psql -X -q -At -v ON_ERROR_STOP=1 -c "SELECT 'left alone: session ' || pid || ' of role ' || usename || ' (not ours to end)' FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename <> current_user;"
        echo "[restore] dropping and recreating the public schema"
        psql -X -q -v ON_ERROR_STOP=1 -1 -c "SET client_min_messages = warning; SET lock_timeout = '60s'; DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
        echo "[restore] pg_restore"
        pg_restore --no-owner --exit-on-error -d "$PGDATABASE" "$dump"
        echo "[restore] done"
        """;

    [GeneratedRegex(@"^UC-BACKUP size=(?<size>\d+) sha256=(?<sha>[0-9a-f]{64}) ms=(?<ms>\d+) path=(?<path>.+)$")]
    private static partial Regex BackupLine();
}
