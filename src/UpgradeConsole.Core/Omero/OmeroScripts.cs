using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Core.Omero;

/// <summary>What one OMERO.server upgrade will do, decided on the plan page.</summary>
/// <remarks>
/// <para>ReleaseZip: Path of the new release's zip on the host, e.g. <c>/opt/omero/OMERO.server-5.6.3-ice36.zip</c>.</para>
/// <para>Steps: The upgrade scripts in order (<see cref="OmeroReleases.Path"/>); empty when the schema does not change.</para>
/// <para>RunId: Names this run's files (dump, kept config.xml, the previous symlink target).</para>
/// </remarks>
public sealed record OmeroUpgradePlan(
    OmeroHostSettings Host,
    string ReleaseZip,
    string TargetVersion,
    OmeroDbVersion CurrentDb,
    IReadOnlyList<OmeroSqlStep> Steps,
    string RunId,
    bool Vacuum = false,
    string? OmeroPyMinimum = null,
    string OmeroCertificatesMinimum = "0.3",
    string? DownloadUrl = null)
{
    public string ReleaseName => OmeroReleases.ReleaseDirectoryName(System.IO.Path.GetFileName(ReleaseZip));

    public OmeroDbVersion TargetDb => Steps.Count > 0 ? Steps[^1].To : CurrentDb;

    public string DumpFileName => $"omero-{RunId}-before-upgrade.db.dump";

    /// <summary>The run's own directory under the backup directory (kept config.xml, previous symlink target).</summary>
    public string RunDirectory => Host.BackupDirectory.TrimEnd('/') + "/omero-run-" + RunId;

    /// <summary>
    /// The plan for upgrading what discovery found to <paramref name="targetVersion"/> from the zip at
    /// <paramref name="releaseZip"/>; null with the reason when discovery does not allow one.
    /// </summary>
    public static (OmeroUpgradePlan? Plan, string? Problem) For(OmeroDiscoveryResult discovery, OmeroHostSettings host, string releaseZip, string targetVersion, string runId, bool vacuum)
    {
        if (discovery.DatabaseVersion is not { } current)
        {
            return (null, "The database version could not be read from dbpatch.");
        }

        if (OmeroReleases.SchemaOf(targetVersion) is not { } target)
        {
            return (null, $"No database schema is known for OMERO.server {targetVersion}.");
        }

        var release = OmeroReleases.VersionOfRelease(OmeroReleases.ReleaseDirectoryName(System.IO.Path.GetFileName(releaseZip)));
        if (release != targetVersion)
        {
            return (null, $"{System.IO.Path.GetFileName(releaseZip)} is not the OMERO.server {targetVersion} release zip.");
        }

        if (runId.Length == 0 || !runId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
        {
            return (null, "A run id is letters, digits, - and _ only.");
        }

        return OmeroReleases.Path(current, target) is { } steps
            ? (new OmeroUpgradePlan(host, releaseZip, targetVersion, current, steps, runId, vacuum && steps.Count > 0, OmeroReleases.MinimumOmeroPy(targetVersion)), null)
            : (null, $"No chain of upgrade scripts leads from {current} to {target}.");
    }
}

/// <summary>
/// The bash scripts of the "OMERO.server 5.x → 5.y" runbook, in the upgrade guide's order. Values a
/// person typed reach them only through <see cref="ShellWords"/>; the database password is read on the
/// host from <c>omero config get omero.db.pass</c> into PGPASSWORD and never printed.
/// </summary>
public static partial class OmeroScripts
{
    /// <summary>The preamble every OMERO script shares: paths, <c>omero</c>, and <c>db_env</c> (PG* from omero's own config).</summary>
    public static string Header(OmeroHostSettings s, bool strict = true) => (strict ? "set -euo pipefail\n" : "set -u\n") + $$"""
        export OMERODIR={{ShellWords.QuotePath(s.ServerDirectory)}}
        VENV={{ShellWords.QuotePath(s.Venv)}}
        BACKUP={{ShellWords.QuotePath(s.BackupDirectory)}}
        OMERO="$VENV/bin/omero"
        export PATH="$VENV/bin:$PATH"
        cfg() { "$OMERO" config get "$1" 2>/dev/null || true; }
        db_env() {
          PGHOST=$(cfg omero.db.host); export PGHOST=${PGHOST:-localhost}
          PGPORT=$(cfg omero.db.port); export PGPORT=${PGPORT:-5432}
          PGDATABASE=$(cfg omero.db.name); export PGDATABASE=${PGDATABASE:-omero}
          PGUSER=$(cfg omero.db.user); export PGUSER=${PGUSER:-omero}
          PGPASSWORD=$(cfg omero.db.pass); export PGPASSWORD
        }
        db_version() { psql -X -q -At -c 'SELECT currentversion || '"'__'"' || currentpatch FROM dbpatch ORDER BY id DESC LIMIT 1'; }

        """;

    /// <summary>
    /// Step 0: the release zip the next steps read. On the host already: checked whole (<c>unzip -t</c>)
    /// and holding the release's own top directory. Not there and a download URL configured: fetched by
    /// the host with curl into <c>.part</c>, checked the same way, and only then moved into place; a
    /// damaged or wrong download is removed and the phase fails before anything else changed.
    /// </summary>
    public static string FetchRelease(OmeroUpgradePlan p) => Header(p.Host) + ReleaseFunctions(p) + """
        if [ -f "$zip" ]; then
          echo "[release] $zip is on the host; checking it"
          whole "$zip"
        elif [ -z "$url" ]; then
          echo "[release] $zip is not on the host and no download URL is configured"
          exit 1
        else
          download "$zip.part" || exit 1
          mv -f -- "$zip.part" "$zip"
        fi
        echo "UC-RELEASE size=$(stat -c %s -- "$zip") sha256=$(sha256sum -- "$zip" | cut -d' ' -f1)"
        """;

    /// <summary>
    /// Bash shared by the run's release phase and a rehearsal's setup: <c>$zip</c>, <c>$url</c>, <c>$top</c>;
    /// <c>whole FILE</c> (a whole zip that holds this release) and <c>download PART</c> (<c>$url</c> fetched with curl
    /// into PART and checked whole; a failed or damaged download is removed and said).
    /// </summary>
    private static string ReleaseFunctions(OmeroUpgradePlan p) => $$"""
        zip={{ShellWords.Quote(p.ReleaseZip)}}
        url={{ShellWords.Quote(p.DownloadUrl ?? "")}}
        top={{ShellWords.Quote(p.ReleaseName + "/")}}
        whole() {
          if ! unzip -tq "$1" >/dev/null 2>&1; then echo "[release] $1 is not a whole zip: unzip -t found it damaged or truncated"; return 1; fi
          if ! unzip -Z1 "$1" | awk -v top="$top" 'index($0, top) == 1 { found = 1 } END { exit !found }'; then
            echo "[release] $1 does not hold $top: it is not this release's zip"; return 1
          fi
        }
        download() {
          command -v curl >/dev/null || { echo "[release] curl is not installed on the host: put the zip at $zip instead"; return 1; }
          echo "[release] downloading $url"
          if ! curl --fail --silent --show-error --location --max-redirs 5 --connect-timeout 30 --retry 2 -o "$1" -- "$url"; then
            rm -f -- "$1"; echo "[release] the download failed"; return 1
          fi
          if ! whole "$1"; then rm -f -- "$1"; return 1; fi
        }

        """;

    /// <summary>What <see cref="FetchRelease"/> reported: the zip's size and SHA-256, or null for any other line.</summary>
    public static (long Size, string Sha256)? ParseRelease(string line)
    {
        var m = ReleaseLine().Match(line);
        return m.Success ? (long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), m.Groups[2].Value) : null;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^UC-RELEASE size=(\d+) sha256=([0-9a-f]{64})$")]
    private static partial System.Text.RegularExpressions.Regex ReleaseLine();

    /// <summary>
    /// Step 1: the precheck of the first upgrade script, read straight out of the release zip (nothing is
    /// unpacked, nothing changes: the script ends in ROLLBACK). It must print exactly the READY line.
    /// Later scripts of a chain expect the intermediate version, so only the first can be prechecked now.
    /// </summary>
    public static string Precheck(OmeroUpgradePlan p)
    {
        if (p.Steps.Count == 0)
        {
            return Header(p.Host) + "echo \"[precheck] the schema does not change for this release: no upgrade script to check\"\n";
        }

        var step = p.Steps[0];
        return Header(p.Host) + $$"""
            zip={{ShellWords.QuotePath(p.ReleaseZip)}}
            member={{ShellWords.Quote(p.ReleaseName + "/" + step.PrecheckPath)}}
            expected={{ShellWords.Quote(step.ReadyLine)}}
            db_env
            [ -f "$zip" ] || { echo "[precheck] the release zip $zip is missing"; exit 2; }
            echo "[precheck] $member against $PGDATABASE on $PGHOST:$PGPORT as $PGUSER"
            set +e
            out=$(unzip -p "$zip" "$member" | psql -X -q -At -v ON_ERROR_STOP=1 2>&1)
            rc=$?
            set -e
            printf '%s\n' "$out" | sed '/^[[:space:]]*$/d'
            if [ "$rc" -eq 0 ] && [ "$(printf '%s\n' "$out" | sed '/^[[:space:]]*$/d')" = "$expected" ]; then
              echo "UC-PRECHECK ready"
            else
              echo "UC-PRECHECK not-ready exit=$rc"
              exit 1
            fi
            """;
    }

    /// <summary>Step 2: <c>pg_dump -Fc</c> as the OMERO database user, verified with <c>pg_restore --list</c>, size and SHA-256.</summary>
    public static string Backup(OmeroUpgradePlan p) => Header(p.Host) + BackupBody(p.DumpFileName);

    private static string BackupBody(string fileName) => $$"""
        db_env
        mkdir -p -- "$BACKUP"
        file="$BACKUP"/{{ShellWords.Quote(fileName)}}
        echo "[backup] pg_dump -Fc of $PGDATABASE on $PGHOST:$PGPORT into $file"
        start=$(date +%s%N)
        pg_dump -Fc --no-password -f "$file.partial"
        mv -f -- "$file.partial" "$file"
        echo "[backup] verifying: pg_restore --list"
        entries=$(pg_restore --list "$file" | grep -c -v '^;' || true)
        size=$(stat -c %s -- "$file")
        if [ "$size" -le 0 ] || [ "$entries" -le 0 ]; then echo "[backup] the dump is empty"; exit 1; fi
        sha=$(sha256sum -- "$file" | cut -d' ' -f1)
        end=$(date +%s%N)
        echo "[backup] $entries entries in the archive's table of contents"
        echo "UC-BACKUP size=$size sha256=$sha ms=$(( (end - start) / 1000000 )) path=$file"
        """;

    /// <summary>Step 3: <c>omero admin stop</c>; it says "Server not running" when already down, so the result is checked with <c>omero admin status</c>.</summary>
    public static string Stop(OmeroUpgradePlan p) => Header(p.Host) + """
        echo "[stop] omero admin stop"
        "$OMERO" admin stop || true
        if "$OMERO" admin status > /dev/null 2>&1; then
          echo "[stop] omero admin status still reports the server up"
          exit 1
        fi
        echo "[stop] OMERO.server is down"
        """;

    /// <summary>Step 4: keep <c>etc/grid/config.xml</c> (and where the symlink pointed) in the run's directory, with its SHA-256.</summary>
    public static string KeepConfig(OmeroUpgradePlan p) => Header(p.Host) + $$"""
        run={{ShellWords.QuotePath(p.RunDirectory)}}
        mkdir -p -- "$run"
        cp -p -- "$OMERODIR/etc/grid/config.xml" "$run/config.xml"
        if [ -L "$OMERODIR" ]; then readlink -- "$OMERODIR" > "$run/previous-target"; else echo "[keep] $OMERODIR is a directory, not a symlink"; fi
        echo "[keep] kept $OMERODIR/etc/grid/config.xml as $run/config.xml (sha256 $(sha256sum -- "$run/config.xml" | cut -d' ' -f1))"
        """;

    /// <summary>
    /// Step 5: unpack the new release beside the old one, point <c>OMERO.server</c> at it and copy
    /// config.xml. A real directory where the symlink belongs is moved aside first, as the guide's
    /// <c>mv OMERO.server OMERO.server-old</c>. Running it again finds the release unpacked and the link set.
    /// </summary>
    public static string Switch(OmeroUpgradePlan p) => Header(p.Host) + $$"""
        zip={{ShellWords.Quote(p.ReleaseZip)}}
        release={{ShellWords.Quote(p.ReleaseName)}}
        run={{ShellWords.QuotePath(p.RunDirectory)}}
        RUN={{ShellWords.Quote(p.RunId)}}
        parent=$(dirname -- "$OMERODIR")
        link=$(basename -- "$OMERODIR")
        if [ ! -d "$parent/$release" ]; then
          echo "[switch] unpacking $zip into $parent"
          unzip -q -d "$parent" "$zip"
        else
          echo "[switch] $parent/$release is already unpacked"
        fi
        [ -x "$parent/$release/bin/omero" ] || [ -d "$parent/$release/sql" ] || { echo "[switch] $parent/$release does not look like an OMERO.server release"; exit 1; }
        if [ -e "$OMERODIR" ] && [ ! -L "$OMERODIR" ]; then
          aside="$OMERODIR-old-$RUN"
          echo "[switch] $OMERODIR is a directory: moving it to $aside"
          mv -- "$OMERODIR" "$aside"
          printf 'aside:%s\n' "$aside" > "$run/previous-target"
        fi
        ln -sfn -- "$release" "$parent/$link.new-$RUN"
        mv -T -- "$parent/$link.new-$RUN" "$OMERODIR"
        cp -p -- "$run/config.xml" "$OMERODIR/etc/grid/config.xml"
        echo "[switch] $OMERODIR -> $(readlink -- "$OMERODIR"); config.xml copied from the old tree"
        """;

    /// <summary>
    /// Step 6, the point of no return: each upgrade script of the chain as the OMERO database user. A
    /// script whose target version the database already has is not run again (the run resumes after a
    /// crash without running SQL twice); each must print its SUCCESSFULLY UPGRADED line.
    /// </summary>
    public static string UpgradeSql(OmeroUpgradePlan p)
    {
        var b = new StringBuilder(Header(p.Host)).Append("db_env\n");
        foreach (var step in p.Steps)
        {
            b.Append(CultureInfo.InvariantCulture, $$"""
                from={{ShellWords.Quote(step.From.ToString())}}; to={{ShellWords.Quote(step.To.ToString())}}
                script="$OMERODIR"/{{ShellWords.Quote(step.ScriptPath)}}
                out="$BACKUP"/{{ShellWords.Quote($"sql-{p.RunId}-{step.To}.out")}}
                current=$(db_version)
                if [ "$current" = "$to" ]; then
                  echo "[sql] the database is already at $to: $script is not run again"
                elif [ "$current" != "$from" ]; then
                  echo "[sql] the database is at $current, but $script upgrades $from"; exit 1
                else
                  echo "[sql] psql -f $script as $PGUSER (this may take hours on a large system)"
                  set +e
                  psql -X -q -At -v ON_ERROR_STOP=1 -f "$script" > "$out" 2>&1
                  rc=$?
                  set -e
                  sed '/^[[:space:]]*$/d' "$out"
                  if [ "$rc" -ne 0 ] || ! grep -qxF {{ShellWords.Quote(step.SuccessLine)}} "$out"; then
                    echo "[sql] $script did not print "{{ShellWords.Quote(step.SuccessLine)}}" (exit $rc)"; exit 1
                  fi
                fi

                """);
        }

        return b.Append("echo \"UC-DBVERSION $(db_version)\"\n").ToString();
    }

    public static string Vacuum(OmeroUpgradePlan p) => Header(p.Host) + """
        db_env
        echo "[vacuum] VACUUM FULL VERBOSE ANALYZE on $PGDATABASE"
        psql -X -v ON_ERROR_STOP=1 -c 'VACUUM FULL VERBOSE ANALYZE' 2>&1 | tail -n 20
        """;

    /// <summary>
    /// Step 7: custom scripts under the old tree's <c>lib/scripts</c> that the new release lacks are
    /// copied; files the new release also has are listed and left as the release ships them.
    /// </summary>
    public static string MergeScripts(OmeroUpgradePlan p) => Header(p.Host) + $$"""
        run={{ShellWords.QuotePath(p.RunDirectory)}}
        parent=$(dirname -- "$OMERODIR")
        old=$(cat -- "$run/previous-target" 2>/dev/null || true)
        old=${old#aside:}
        case "$old" in /*) ;; "") echo "[scripts] no previous tree recorded"; exit 1 ;; *) old="$parent/$old" ;; esac
        new=$(readlink -f -- "$OMERODIR")
        [ -d "$old/lib/scripts" ] || { echo "[scripts] $old has no lib/scripts"; exit 0; }
        copied=0; kept=0
        while IFS= read -r -d '' f; do
          rel=${f#"$old/lib/scripts/"}
          if [ ! -e "$new/lib/scripts/$rel" ]; then
            mkdir -p -- "$(dirname -- "$new/lib/scripts/$rel")"
            cp -p -- "$f" "$new/lib/scripts/$rel"
            echo "[scripts] copied custom script: $rel"; copied=$((copied+1))
          elif ! cmp -s -- "$f" "$new/lib/scripts/$rel"; then
            echo "[scripts] differs, kept the new release's: $rel"; kept=$((kept+1))
          fi
        done < <(find "$old/lib/scripts" -type f -print0)
        echo "[scripts] $copied copied, $kept left as the release ships them"
        """;

    /// <summary>Step 8: <c>pip install --upgrade 'omero-py&gt;=…'</c> in the server's environment.</summary>
    public static string PipOmeroPy(OmeroUpgradePlan p)
    {
        var requirement = p.OmeroPyMinimum is { } min ? "omero-py>=" + min : "omero-py";
        return Header(p.Host) + $$"""
            echo "[pip] pip install --upgrade "{{ShellWords.Quote(requirement)}}
            "$VENV/bin/pip" install --disable-pip-version-check --upgrade {{PipOptions(p.Host)}} {{ShellWords.Quote(requirement)}}
            echo "[pip] omero-py $("$VENV/bin/pip" show omero-py | sed -n 's/^Version: //p')"
            """;
    }

    /// <summary>Step 9: omero-certificates, drop the two IceSSL protocol settings, then <c>omero certificates</c>.</summary>
    public static string Certificates(OmeroUpgradePlan p) => Header(p.Host) + $$"""
        echo "[certificates] pip install "{{ShellWords.Quote("omero-certificates>=" + p.OmeroCertificatesMinimum)}}
        "$VENV/bin/pip" install --disable-pip-version-check {{PipOptions(p.Host)}} {{ShellWords.Quote("omero-certificates>=" + p.OmeroCertificatesMinimum)}}
        for key in omero.glacier2.IceSSL.Protocols omero.glacier2.IceSSL.ProtocolVersionMax; do
          echo "[certificates] dropping $key (was: $(cfg "$key"))"
          "$OMERO" config set "$key"
        done
        "$OMERO" certificates
        """;

    /// <summary>Step 10: Bio-Formats memo files are invalid for the new release; delete them before starting it.</summary>
    public static string DeleteBioFormatsCache(OmeroUpgradePlan p) => Header(p.Host) + """
        data=$(cfg omero.data.dir); data=${data:-/OMERO}
        cache="${data%/}/BioFormatsCache"
        if [ -d "$cache" ]; then
          echo "[cache] deleting $cache ($(du -sh -- "$cache" | cut -f1))"
          rm -rf -- "$cache"
        else
          echo "[cache] $cache does not exist"
        fi
        """;

    public static string Start(OmeroUpgradePlan p) => Header(p.Host) + """
        echo "[start] omero admin start"
        "$OMERO" admin start
        """;

    /// <summary>Post-checks: the server is up, the database has the target version, <c>omero version</c> names the new release.</summary>
    public static string PostChecks(OmeroUpgradePlan p) => Header(p.Host) + $$"""
        db_env
        fail=0
        if "$OMERO" admin status > /dev/null 2>&1; then echo "[post] omero admin status: running"; else echo "[post] omero admin status: NOT running"; fail=1; fi
        v=$(db_version)
        if [ "$v" = {{ShellWords.Quote(p.TargetDb.ToString())}} ]; then echo "[post] database version $v"; else echo "[post] database version $v, expected "{{ShellWords.Quote(p.TargetDb.ToString())}}; fail=1; fi
        server=$("$OMERO" version 2>&1 | sed -n '/^OMERO.server version:$/{n;p}')
        if [ "$server" = {{ShellWords.Quote(p.TargetVersion)}} ]; then echo "[post] OMERO.server $server"; else echo "[post] OMERO.server ${server:-unknown}, expected "{{ShellWords.Quote(p.TargetVersion)}}; fail=1; fi
        exit $fail
        """;

    /// <summary>On failure: <c>omero admin diagnostics</c> into the run log; never fails itself.</summary>
    public static string Diagnostics(OmeroUpgradePlan p) => Header(p.Host, strict: false) + """
        echo "[diagnostics] omero admin diagnostics"
        "$OMERO" admin diagnostics 2>&1
        exit 0
        """;

    /// <summary>Rollback, any time: stop the server and point <c>OMERO.server</c> back at the tree it pointed to before, with its config.xml.</summary>
    public static string RollbackSwitch(OmeroUpgradePlan p) => Header(p.Host) + $$"""
        run={{ShellWords.QuotePath(p.RunDirectory)}}
        previous=$(cat -- "$run/previous-target" 2>/dev/null || true)
        [ -n "$previous" ] || { echo "[rollback] no previous OMERO.server target recorded in $run"; exit 1; }
        "$OMERO" admin stop > /dev/null 2>&1 || true
        if [ -e "$OMERODIR" ] && [ ! -L "$OMERODIR" ]; then echo "[rollback] $OMERODIR is not a symlink; not touching it"; exit 1; fi
        RUN={{ShellWords.Quote(p.RunId)}}
        case "$previous" in
          aside:*)
            rm -f -- "$OMERODIR"; mv -- "${previous#aside:}" "$OMERODIR" ;;
          *)
            ln -sfn -- "$previous" "$OMERODIR.rollback-$RUN"
            mv -T -- "$OMERODIR.rollback-$RUN" "$OMERODIR" ;;
        esac
        cp -p -- "$run/config.xml" "$OMERODIR/etc/grid/config.xml"
        echo "[rollback] $OMERODIR -> $(readlink -- "$OMERODIR" || echo "$OMERODIR") with the kept config.xml"
        """;

    /// <summary>
    /// Rollback past the point of no return: restore this run's verified dump into the same database
    /// (ADR 0015: drop and recreate the public schema, then <c>pg_restore</c>, as ADR 0007 does for
    /// Fractal), then check the version is the one before the upgrade.
    /// </summary>
    public static string RestoreDatabase(OmeroUpgradePlan p, string dumpPath, string? expectedSha256) => Header(p.Host) + $$"""
        db_env
        dump={{ShellWords.Quote(dumpPath)}}
        expected={{ShellWords.Quote(expectedSha256 ?? "")}}
        before={{ShellWords.Quote(p.CurrentDb.ToString())}}
        [ -s "$dump" ] || { echo "[restore] $dump is missing or empty" >&2; exit 3; }
        if [ -n "$expected" ]; then
          actual=$(sha256sum -- "$dump" | cut -d' ' -f1)
          [ "$actual" = "$expected" ] || { echo "[restore] $dump changed since it was verified (SHA-256 $actual, recorded $expected); not restoring it" >&2; exit 3; }
          echo "[restore] SHA-256 matches the one recorded at backup"
        fi
        pg_restore --list "$dump" > /dev/null
        "$OMERO" admin stop > /dev/null 2>&1 || true
        psql -X -q -At -v ON_ERROR_STOP=1 -c "SELECT 'ended ' || count(pg_terminate_backend(pid)) || ' session(s)' FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename = current_user;"
        echo "[restore] dropping and recreating the public schema of $PGDATABASE"
        psql -X -q -v ON_ERROR_STOP=1 -1 -c "SET client_min_messages = warning; SET lock_timeout = '60s'; DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
        echo "[restore] pg_restore"
        pg_restore --no-owner --exit-on-error -d "$PGDATABASE" "$dump"
        now=$(db_version)
        if [ "$now" != "$before" ]; then echo "[restore] database version $now after the restore, expected $before"; exit 1; fi
        echo "UC-DBVERSION $now"
        echo "[restore] done: the database is back at $now"
        """;

    public static OmeroBackupRecord? ParseBackup(string line)
    {
        var m = BackupLine().Match(line);
        return m.Success
            ? new OmeroBackupRecord(m.Groups["path"].Value, long.Parse(m.Groups["size"].Value, CultureInfo.InvariantCulture), m.Groups["sha"].Value, long.Parse(m.Groups["ms"].Value, CultureInfo.InvariantCulture))
            : null;
    }

    /// <summary>The database version a script reported with its <c>UC-DBVERSION</c> line.</summary>
    public static OmeroDbVersion? ParseDbVersionLine(string line) =>
        line.StartsWith("UC-DBVERSION ", StringComparison.Ordinal) ? OmeroDbVersion.Parse(line["UC-DBVERSION ".Length..]) : null;

    private static string PipOptions(OmeroHostSettings s) => string.Join(' ', s.PipOptions.Select(ShellWords.Quote));

    [GeneratedRegex(@"^UC-BACKUP size=(?<size>\d+) sha256=(?<sha>[0-9a-f]{64}) ms=(?<ms>\d+) path=(?<path>.+)$")]
    private static partial Regex BackupLine();
}

/// <summary>A verified dump, as the backup script reports it.</summary>
public sealed record OmeroBackupRecord(string Path, long Size, string Sha256, long Milliseconds);
