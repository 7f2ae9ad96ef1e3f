using System.Globalization;
using System.Text.RegularExpressions;

namespace UpgradeConsole.Core.Omero;

/// <summary>
/// A version of OMERO's database schema as the <c>dbpatch</c> table records it: <c>currentversion</c>
/// (e.g. <c>OMERO5.3</c>) and <c>currentpatch</c> (e.g. <c>0</c>); written <c>OMERO5.3__0</c>, the name of
/// the <c>sql/psql/</c> directory and scripts.
/// </summary>
public sealed partial record OmeroDbVersion(string Version, int Patch)
{
    public override string ToString() => $"{Version}__{Patch.ToString(CultureInfo.InvariantCulture)}";

    public static OmeroDbVersion? Parse(string? text)
    {
        var m = Pattern().Match(text?.Trim() ?? "");
        return m.Success ? new(m.Groups["v"].Value, int.Parse(m.Groups["p"].Value, CultureInfo.InvariantCulture)) : null;
    }

    [GeneratedRegex(@"^(?<v>OMERO\d+\.\d+(?:DEV|RC\d+)?)__(?<p>\d+)$")]
    private static partial Regex Pattern();
}

/// <summary>One upgrade script of the chain: <c>sql/psql/&lt;To&gt;/&lt;From&gt;.sql</c> and its precheck.</summary>
public sealed record OmeroSqlStep(OmeroDbVersion From, OmeroDbVersion To)
{
    public string ScriptPath => $"sql/psql/{To}/{From}.sql";

    public string PrecheckPath => $"sql/psql/{To}/{From}-precheck.sql";

    /// <summary>The line the upgrade script prints last when it committed.</summary>
    public string SuccessLine => OmeroReleases.UpgradedLine + To;

    public string ReadyLine => OmeroReleases.ReadyLine + To;
}

/// <summary>
/// What the dashboard knows of OMERO.server releases, from OMERO's own SQL (ome/openmicroscopy
/// <c>sql/psql/</c>) and the upgrade guide (shared/design/runbooks.md).
/// </summary>
public static partial class OmeroReleases
{
    /// <summary>Printed by <c>&lt;old&gt;-precheck.sql</c> when nothing stands in the way (followed by the new version).</summary>
    public const string ReadyLine = "YOUR DATABASE IS READY FOR UPGRADE TO VERSION ";

    /// <summary>Printed by <c>&lt;old&gt;.sql</c> after its last statement (followed by the new version).</summary>
    public const string UpgradedLine = "YOU HAVE SUCCESSFULLY UPGRADED YOUR DATABASE TO VERSION ";

    /// <summary>
    /// Each schema version and the one its upgrade script starts from: <c>sql/psql/OMERO5.4__0/OMERO5.3__0.sql</c>,
    /// <c>sql/psql/OMERO5.3__0/OMERO5.2__0.sql</c>.
    /// </summary>
    private static readonly (OmeroDbVersion To, OmeroDbVersion From)[] Chain =
    [
        (new("OMERO5.3", 0), new("OMERO5.2", 0)),
        (new("OMERO5.4", 0), new("OMERO5.3", 0)),
    ];

    /// <summary>
    /// The lowest PostgreSQL server (<c>server_version_num</c>) each schema's scripts accept: the
    /// <c>assert_db_server_prerequisites(…)</c> argument of <c>OMERO5.4__0/OMERO5.3__0(-precheck).sql</c>
    /// and of <c>OMERO5.3__0/OMERO5.2__0.sql</c> (both 90300, PostgreSQL 9.3).
    /// </summary>
    private static readonly Dictionary<string, int> MinimumPostgres = new(StringComparer.Ordinal)
    {
        ["OMERO5.3__0"] = 90300,
        ["OMERO5.4__0"] = 90300,
    };

    /// <summary>The database schema an OMERO.server release runs on (5.5 and 5.6 kept 5.4's schema).</summary>
    public static OmeroDbVersion? SchemaOf(string serverVersion)
    {
        var m = ServerVersion().Match(serverVersion);
        if (!m.Success)
        {
            return null;
        }

        var major = int.Parse(m.Groups["major"].Value, CultureInfo.InvariantCulture);
        var minor = int.Parse(m.Groups["minor"].Value, CultureInfo.InvariantCulture);
        return (major, minor) switch
        {
            (5, 2) => new("OMERO5.2", 0),
            (5, 3) => new("OMERO5.3", 0),
            (5, >= 4 and <= 6) => new("OMERO5.4", 0),
            _ => null,
        };
    }

    /// <summary>The scripts to run, in order, from <paramref name="current"/> to <paramref name="target"/>; empty when already there; null when no chain is known.</summary>
    public static IReadOnlyList<OmeroSqlStep>? Path(OmeroDbVersion current, OmeroDbVersion target)
    {
        var steps = new List<OmeroSqlStep>();
        var at = current;
        while (at != target)
        {
            var next = Chain.FirstOrDefault(c => c.From == at);
            if (next == default)
            {
                return null;
            }

            steps.Add(new OmeroSqlStep(next.From, next.To));
            at = next.To;
        }

        return steps;
    }

    public static int? MinimumPostgresFor(OmeroDbVersion target) =>
        MinimumPostgres.TryGetValue(target.ToString(), out var v) ? v : null;

    /// <summary>10.23 for 100023, 9.3.0 for 90300: PostgreSQL's own way of writing server_version_num.</summary>
    public static string PrettyPostgres(int versionNum) => versionNum >= 100000
        ? $"{versionNum / 10000}.{versionNum % 10000}"
        : $"{versionNum / 10000}.{versionNum / 100 % 100}.{versionNum % 100}";

    /// <summary>The top directory of a release zip (<c>OMERO.server-5.6.3-ice36.zip</c> → <c>OMERO.server-5.6.3-ice36</c>).</summary>
    public static string ReleaseDirectoryName(string zipFileName) =>
        zipFileName.EndsWith(".zip", StringComparison.OrdinalIgnoreCase) ? zipFileName[..^4] : zipFileName;

    /// <summary>The server version in a release name such as <c>OMERO.server-5.6.3-ice36</c>.</summary>
    public static string? VersionOfRelease(string releaseName)
    {
        var m = ReleaseName().Match(releaseName);
        return m.Success ? m.Groups["v"].Value : null;
    }

    /// <summary>omero-py the target release needs (runbooks.md: 5.6.12+ needs omero-py ≥ 5.19.4).</summary>
    public static string? MinimumOmeroPy(string serverVersion)
    {
        var v = ServerVersion().Match(serverVersion);
        if (!v.Success)
        {
            return null;
        }

        var parts = (int.Parse(v.Groups["major"].Value, CultureInfo.InvariantCulture), int.Parse(v.Groups["minor"].Value, CultureInfo.InvariantCulture),
            int.Parse(v.Groups["patch"].Value, CultureInfo.InvariantCulture));
        return parts.CompareTo((5, 6, 12)) >= 0 ? "5.19.4" : null;
    }

    [GeneratedRegex(@"^(?<major>\d+)\.(?<minor>\d+)\.(?<patch>\d+)")]
    private static partial Regex ServerVersion();

    [GeneratedRegex(@"^OMERO\.server-(?<v>\d+\.\d+\.\d+)(?:-ice\d+)?$")]
    private static partial Regex ReleaseName();
}
