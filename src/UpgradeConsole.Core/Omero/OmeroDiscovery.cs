using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Core.Omero;

/// <summary>Where OMERO.server lives on a target, as an Admin configures it.</summary>
/// <remarks>
/// <para>ServerDirectory: The <c>OMERO.server</c> path (normally a symlink to the release directory); OMERODIR.</para>
/// <para>Venv: The Python environment holding omero-py (its <c>bin/omero</c> and <c>bin/pip</c>).</para>
/// <para>BackupDirectory: Where dumps and the kept config.xml go.</para>
/// <para>PipOptions: Extra words for pip (an index URL, <c>--no-index --find-links …</c>), each quoted.</para>
/// </remarks>
public sealed record OmeroHostSettings(string ServerDirectory, string Venv, string BackupDirectory, IReadOnlyList<string> PipOptions)
{
    public IReadOnlyList<string> PipOptions { get; init; } = PipOptions;
}

/// <summary>The database settings from <c>omero config get</c>; the password is never kept, only whether one is set.</summary>
public sealed record OmeroDbSettings(string Host, int Port, string Name, string User, bool HasPassword)
{
    /// <summary>OMERO's defaults when a key is not set (omero.db.host=localhost, port 5432, name and user omero).</summary>
    public static OmeroDbSettings From(IReadOnlyDictionary<string, string> config) => new(
        config.GetValueOrDefault("omero.db.host") is { Length: > 0 } h ? h : "localhost",
        int.TryParse(config.GetValueOrDefault("omero.db.port"), NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : 5432,
        config.GetValueOrDefault("omero.db.name") is { Length: > 0 } n ? n : "omero",
        config.GetValueOrDefault("omero.db.user") is { Length: > 0 } u ? u : "omero",
        config.GetValueOrDefault("omero.db.pass") is { Length: > 0 });
}

/// <summary>What discovery found on an OMERO host; each part is null when it could not be read, with the reason in <see cref="Problems"/>.</summary>
public sealed record OmeroDiscoveryResult
{
    public string? OmeroDir { get; init; }

    /// <summary>The release directory the <c>OMERO.server</c> path resolves to.</summary>
    public string? ServerTree { get; init; }

    public bool ServerIsSymlink { get; init; }

    public string? ServerVersion { get; init; }

    public string? OmeroPyVersion { get; init; }

    /// <summary><c>omero config get</c>, passwords masked as omero itself masks them.</summary>
    public IReadOnlyDictionary<string, string> Config { get; init; } = new Dictionary<string, string>();

    public OmeroDbSettings? Database { get; init; }

    public OmeroDbVersion? DatabaseVersion { get; init; }

    /// <summary>PostgreSQL's <c>server_version_num</c>, e.g. 150004.</summary>
    public int? PostgresVersionNum { get; init; }

    public string? Encoding { get; init; }

    public long? DatabaseSizeBytes { get; init; }

    public long? BackupFreeBytes { get; init; }

    public string? DataDirectory { get; init; }

    /// <summary>Size of <c>&lt;data dir&gt;/BioFormatsCache</c>; null when it does not exist.</summary>
    public long? BioFormatsCacheBytes { get; init; }

    public string? OmeroCertificatesVersion { get; init; }

    public string? JavaVersion { get; init; }

    /// <summary>Exit code of <c>omero admin status</c>: 0 when the server is up.</summary>
    public int? AdminStatusExit { get; init; }

    public IReadOnlyList<string> Problems { get; init; } = [];
}

/// <summary>
/// Reads an OMERO host in one SSH command: a script that prints marked sections, and a pure parser
/// for them. The database password is read by the script on the host (<c>omero config get omero.db.pass</c>)
/// into PGPASSWORD and never printed.
/// </summary>
public static partial class OmeroDiscovery
{
    public const string Mask = "********";

    private const string Marker = "::uc-omero:: ";

    /// <summary>True for keys omero masks in <c>omero config get</c> (names ending in pass or password).</summary>
    public static bool IsSecret(string key) =>
        key.EndsWith("pass", StringComparison.OrdinalIgnoreCase) || key.EndsWith("password", StringComparison.OrdinalIgnoreCase);

    /// <summary>The discovery script; every value comes from the settings through <see cref="ShellWords"/>.</summary>
    public static string Script(OmeroHostSettings s)
    {
        var b = new StringBuilder(OmeroScripts.Header(s, strict: false));
        void Section(string name, string command) => b.Append("echo ").Append(ShellWords.Quote(Marker + name)).Append('\n').Append(command).Append('\n');
        Section("omerodir", "printf '%s\\n' \"$OMERODIR\"");
        Section("symlink", "if [ -L \"$OMERODIR\" ]; then echo yes; else echo no; fi");
        Section("tree", "readlink -f -- \"$OMERODIR\" || echo");
        Section("version", "\"$OMERO\" version 2>&1; echo \"exit=$?\"");
        Section("config", "\"$OMERO\" config get 2>&1");
        Section("status", "\"$OMERO\" admin status > /dev/null 2>&1; echo \"exit=$?\"");
        Section("dbpatch", "db_env && psql -X -q -At -c 'SELECT currentversion, currentpatch FROM dbpatch ORDER BY id DESC LIMIT 1' 2>&1 | sed 's/|/__/'");
        Section("pg", "db_env && psql -X -q -At -c 'SHOW server_version_num' 2>&1");
        Section("encoding", "db_env && psql -X -q -At -c 'SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()' 2>&1");
        Section("dbsize", "db_env && psql -X -q -At -c 'SELECT pg_database_size(current_database())' 2>&1");
        Section("free", "mkdir -p -- \"$BACKUP\" 2>/dev/null; df -PB1 -- \"$BACKUP\" 2>&1 | awk 'NR==2 {print $4}'");
        Section("datadir", "d=$(cfg omero.data.dir); d=${d:-/OMERO}; printf '%s\\n' \"$d\"; if [ -d \"$d/BioFormatsCache\" ]; then du -sb -- \"$d/BioFormatsCache\" | cut -f1; else echo none; fi");
        Section("certificates", "\"$VENV/bin/pip\" show omero-certificates 2>/dev/null | sed -n 's/^Version: //p'");
        Section("java", "java -version 2>&1 | head -n 1");
        Section("end", "true");
        return b.ToString();
    }

    public static OmeroDiscoveryResult Parse(string output)
    {
        var sections = Sections(output);
        var problems = new List<string>();
        string? One(string name) => sections.TryGetValue(name, out var lines) ? lines.FirstOrDefault(l => l.Length > 0) : null;

        var config = ParseConfig(sections.GetValueOrDefault("config") ?? []);
        var (serverVersion, pyVersion, versionProblem) = ParseVersion(sections.GetValueOrDefault("version") ?? []);
        if (versionProblem is not null)
        {
            problems.Add(versionProblem);
        }

        var dbpatch = One("dbpatch");
        var dbVersion = OmeroDbVersion.Parse(dbpatch);
        if (dbVersion is null)
        {
            problems.Add("The database version could not be read: " + (dbpatch ?? "no answer"));
        }

        var pg = One("pg");
        int? pgNum = int.TryParse(pg, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : null;
        if (pgNum is null)
        {
            problems.Add("The PostgreSQL version could not be read: " + (pg ?? "no answer"));
        }

        var datadir = sections.GetValueOrDefault("datadir") ?? [];
        var status = One("status");
        return new OmeroDiscoveryResult
        {
            OmeroDir = One("omerodir"),
            ServerIsSymlink = One("symlink") == "yes",
            ServerTree = One("tree") is { Length: > 0 } t ? t : null,
            ServerVersion = serverVersion,
            OmeroPyVersion = pyVersion,
            Config = config,
            Database = OmeroDbSettings.From(config),
            DatabaseVersion = dbVersion,
            PostgresVersionNum = pgNum,
            Encoding = One("encoding") is { } e && EncodingName().IsMatch(e) ? e : null,
            DatabaseSizeBytes = Long(One("dbsize")),
            BackupFreeBytes = Long(One("free")),
            DataDirectory = datadir.Count > 0 ? datadir[0] : null,
            BioFormatsCacheBytes = datadir.Count > 1 ? Long(datadir[1]) : null,
            OmeroCertificatesVersion = One("certificates"),
            JavaVersion = One("java") is { } j ? JavaVersionText(j) : null,
            AdminStatusExit = status is not null && status.StartsWith("exit=", StringComparison.Ordinal) ? Long(status[5..]) is { } x ? (int)x : null : null,
            Problems = problems,
        };
    }

    /// <summary>
    /// <c>omero config get</c> prints <c>key=value</c> lines and masks passwords itself; a value is
    /// masked here again whatever it says, so a secret never leaves this method.
    /// </summary>
    public static IReadOnlyDictionary<string, string> ParseConfig(IEnumerable<string> lines)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in lines)
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || !PropertyName().IsMatch(line[..eq]))
            {
                continue;
            }

            var key = line[..eq];
            var value = line[(eq + 1)..];
            result[key] = IsSecret(key) && value.Length > 0 ? Mask : value;
        }

        return result;
    }

    /// <summary><c>omero version</c>: "OMERO.py version:" then the omero-py version, "OMERO.server version:" then the server's (omero.version of etc/omero.properties).</summary>
    public static (string? Server, string? OmeroPy, string? Problem) ParseVersion(IReadOnlyList<string> lines)
    {
        string? py = null, server = null;
        for (var i = 0; i < lines.Count - 1; i++)
        {
            if (lines[i].Trim() == "OMERO.py version:")
            {
                py = lines[i + 1].Trim();
            }
            else if (lines[i].Trim() == "OMERO.server version:")
            {
                server = lines[i + 1].Trim();
            }
        }

        var exit = lines.LastOrDefault(l => l.StartsWith("exit=", StringComparison.Ordinal));
        return server is null
            ? (null, py, $"`omero version` did not name the server version ({exit ?? "no exit code"}): {string.Join(" / ", lines.Where(l => !l.StartsWith("exit=", StringComparison.Ordinal)).Take(3))}")
            : (server, py, null);
    }

    private static Dictionary<string, List<string>> Sections(string output)
    {
        var sections = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        List<string>? current = null;
        foreach (var raw in output.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.StartsWith(Marker, StringComparison.Ordinal))
            {
                current = sections[line[Marker.Length..]] = [];
            }
            else
            {
                current?.Add(line);
            }
        }

        return sections;
    }

    private static long? Long(string? s) => long.TryParse(s?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : null;

    private static string JavaVersionText(string line)
    {
        var m = JavaVersionPattern().Match(line);
        return m.Success ? m.Groups[1].Value : line.Trim();
    }

    [GeneratedRegex(@"^[A-Za-z0-9._-]+$")]
    private static partial Regex PropertyName();

    [GeneratedRegex(@"^[A-Z0-9_]+$")]
    private static partial Regex EncodingName();

    [GeneratedRegex("version \"([^\"]+)\"")]
    private static partial Regex JavaVersionPattern();
}
