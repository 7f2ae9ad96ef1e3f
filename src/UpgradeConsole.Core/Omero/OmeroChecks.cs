using System.Globalization;
using UpgradeConsole.Core.Fractal;

namespace UpgradeConsole.Core.Omero;

/// <summary>
/// The preflight checks of an OMERO.server upgrade, each a pure function of what discovery and the
/// precheck script reported, with its verdict in plain words.
/// </summary>
public static class OmeroChecks
{
    /// <summary>Room asked for beyond the database's size: a custom-format dump is normally far smaller, but never count on it.</summary>
    public const double BackupMargin = 1.1;

    public static IReadOnlyList<CheckResult> Evaluate(OmeroDiscoveryResult d, string targetVersion, OmeroPrecheckResult? precheck, bool releaseZipPresent, string? releaseDownloadUrl, string? downloadProblem = null)
    {
        var target = OmeroReleases.SchemaOf(targetVersion);
        return
        [
            UpgradePath(d.DatabaseVersion, targetVersion),
            target is null ? new("omero.postgres", "PostgreSQL is supported by the target release", CheckStatus.Fail, $"No database schema is known for OMERO.server {targetVersion}.") : PostgresVersion(d.PostgresVersionNum, target),
            Encoding(d.Encoding, d.Database?.Name ?? "omero", d.Database?.User ?? "omero"),
            precheck is not null ? Precheck(precheck)
                : !releaseZipPresent && releaseDownloadUrl is { Length: > 0 } && downloadProblem is null
                    ? new("omero.precheck", "The precheck script says the database is ready", CheckStatus.Warn, "The precheck script is read from the release zip, which is not on the host yet: the run downloads it, then runs the precheck before anything changes.")
                    : new("omero.precheck", "The precheck script says the database is ready", CheckStatus.Warn, "The precheck has not run yet."),
            BackupRoom(d.BackupFreeBytes, d.DatabaseSizeBytes),
            ReleaseZip(releaseZipPresent, releaseDownloadUrl, downloadProblem),
            AdminStatus(d.AdminStatusExit),
        ];
    }

    public static CheckResult UpgradePath(OmeroDbVersion? current, string targetVersion)
    {
        const string id = "omero.path";
        const string title = "An upgrade path exists from the database's version";
        var target = OmeroReleases.SchemaOf(targetVersion);
        if (current is null)
        {
            return new(id, title, CheckStatus.Fail, "The database version could not be read from dbpatch (see discovery).");
        }

        if (target is null)
        {
            return new(id, title, CheckStatus.Fail, $"No database schema is known for OMERO.server {targetVersion}.");
        }

        var path = OmeroReleases.Path(current, target);
        if (path is null)
        {
            return new(id, title, CheckStatus.Fail, $"The database is at {current}; no chain of upgrade scripts leads from it to {target}.");
        }

        return path.Count == 0
            ? new(id, title, CheckStatus.Pass, $"The database is already at {target}, the schema of {targetVersion}: no SQL upgrade runs.")
            : new(id, title, CheckStatus.Pass, $"The database is at {current}; {string.Join(", then ", path.Select(s => s.ScriptPath))} take it to {target}.");
    }

    public static CheckResult PostgresVersion(int? serverVersionNum, OmeroDbVersion target)
    {
        const string id = "omero.postgres";
        const string title = "PostgreSQL is supported by the target release";
        if (serverVersionNum is null)
        {
            return new(id, title, CheckStatus.Fail, "The PostgreSQL server version could not be read.");
        }

        var have = OmeroReleases.PrettyPostgres(serverVersionNum.Value);
        if (OmeroReleases.MinimumPostgresFor(target) is not { } min)
        {
            return new(id, title, CheckStatus.Warn, $"PostgreSQL {have}: no minimum is recorded for {target}; its upgrade script checks it again.");
        }

        return serverVersionNum >= min
            ? new(id, title, CheckStatus.Pass, $"PostgreSQL {have} meets {target}'s prerequisite of {OmeroReleases.PrettyPostgres(min)}.")
            : new(id, title, CheckStatus.Fail, $"PostgreSQL {have} is older than {OmeroReleases.PrettyPostgres(min)}, which {target}'s upgrade script requires: it would abort. Upgrade PostgreSQL first.");
    }

    /// <summary>The database must be UTF8; otherwise the verdict carries the re-encode plan (dump, create with -E UTF8, restore), never done silently.</summary>
    public static CheckResult Encoding(string? encoding, string database, string owner)
    {
        const string id = "omero.encoding";
        const string title = "The database is UTF8";
        if (encoding is null)
        {
            return new(id, title, CheckStatus.Fail, "The database encoding could not be read.");
        }

        return encoding == "UTF8"
            ? new(id, title, CheckStatus.Pass, "The database encoding is UTF8.")
            : new(id, title, CheckStatus.Fail,
                $"The database encoding is {encoding}; OMERO's upgrade scripts require UTF8 and stop otherwise. Re-encode it first, with the server stopped: " +
                $"pg_dump -Fc -f {database}.dump {database}; createdb -E UTF8 -T template0 -O {owner} {database}_utf8; pg_restore -d {database}_utf8 {database}.dump; " +
                $"then omero config set omero.db.name {database}_utf8. The dashboard does not do this for you.");
    }

    /// <summary>The precheck passes only when its whole output is the READY line; anything else fails in the script's own words.</summary>
    public static CheckResult Precheck(OmeroPrecheckResult r)
    {
        const string id = "omero.precheck";
        const string title = "The precheck script says the database is ready";
        var lines = r.Output.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Trim().Length > 0 && !l.StartsWith("UC-PRECHECK", StringComparison.Ordinal) && !l.StartsWith("[precheck]", StringComparison.Ordinal)).ToList();
        var ready = OmeroReleases.ReadyLine + r.Target;
        if (r.ExitCode == 0 && lines.Count == 1 && lines[0].Trim() == ready)
        {
            return new(id, title, CheckStatus.Pass, $"{r.Script} printed \"{ready}\".");
        }

        var words = lines.Count == 0 ? "(no output)" : string.Join("\n", lines.Take(20));
        return new(id, title, CheckStatus.Fail, $"{r.Script} did not say the database is ready (exit {r.ExitCode.ToString(CultureInfo.InvariantCulture)}). It said:\n{words}\nResolve what it reports, then run the precheck again.");
    }

    public static CheckResult BackupRoom(long? freeBytes, long? databaseBytes)
    {
        const string id = "omero.backup-room";
        const string title = "There is room for the dump";
        if (freeBytes is null || databaseBytes is null)
        {
            return new(id, title, CheckStatus.Fail, "The free space of the backup directory or the database size could not be read.");
        }

        var needed = (long)(databaseBytes.Value * BackupMargin);
        return freeBytes >= needed
            ? new(id, title, CheckStatus.Pass, $"{Size(freeBytes.Value)} free for a database of {Size(databaseBytes.Value)}.")
            : new(id, title, CheckStatus.Fail, $"Only {Size(freeBytes.Value)} free in the backup directory; the database is {Size(databaseBytes.Value)} and the dump needs up to {Size(needed)}.");
    }

    public static CheckResult ReleaseZip(bool present, string? downloadUrl, string? downloadProblem = null)
    {
        const string id = "omero.release";
        const string title = "The new release's zip is on the host";
        if (present)
        {
            return new(id, title, CheckStatus.Pass, "The release zip is on the host.");
        }

        if (downloadUrl is not { Length: > 0 })
        {
            return new(id, title, CheckStatus.Fail, "The release zip is not on the host and no download URL is configured (UpgradeConsole:Omero:ReleaseUrl). Put the zip beside OMERO.server, or configure the URL.");
        }

        return downloadProblem is null
            ? new(id, title, CheckStatus.Warn, $"The release zip is not on the host yet; the run's first phase downloads it from {downloadUrl} (the URL you configured; the host reached it just now).")
            : new(id, title, CheckStatus.Fail, $"The release zip is not on the host, and the host cannot download it from {downloadUrl}: {downloadProblem}");
    }

    /// <summary>The precheck is safe while the server runs, and the runbook stops it; a server already down is worth a word.</summary>
    public static CheckResult AdminStatus(int? exitCode) => exitCode switch
    {
        null => new("omero.status", "omero admin status", CheckStatus.Fail, "omero admin status could not be run."),
        0 => new("omero.status", "omero admin status", CheckStatus.Pass, "OMERO.server is running; the upgrade stops it after the backup."),
        _ => new("omero.status", "omero admin status", CheckStatus.Warn, $"OMERO.server is not running (omero admin status exited {exitCode.Value.ToString(CultureInfo.InvariantCulture)}): was it stopped on purpose?"),
    };

    private static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => (bytes / (double)(1L << 30)).ToString("0.0", CultureInfo.InvariantCulture) + " GiB",
        >= 1L << 20 => (bytes / (double)(1L << 20)).ToString("0.0", CultureInfo.InvariantCulture) + " MiB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + " B",
    };
}

/// <summary>What the precheck phase printed, and which script and target it checked.</summary>
public sealed record OmeroPrecheckResult(string Script, OmeroDbVersion Target, int ExitCode, string Output);
