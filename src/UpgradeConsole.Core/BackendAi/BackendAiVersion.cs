using System.Globalization;
using System.Text.RegularExpressions;

namespace UpgradeConsole.Core.BackendAi;

/// <summary>
/// A Backend.AI release: <c>YY.MM.patch</c> (<c>23.09.10</c>). The year and month name a release series
/// (what the upgrade guide calls a major release: 23.03, 23.09, 24.03); the patch counts the minor releases
/// of the series. Pip prints the version PEP 440-normalised (<c>23.9.10</c>): both spellings are the same
/// version, shown the way Backend.AI writes it.
/// </summary>
public readonly partial record struct BackendAiVersion(int Year, int Month, int Patch) : IComparable<BackendAiVersion>
{
    public BackendAiSeries Series => new(Year, Month);

    public int CompareTo(BackendAiVersion other) =>
        (Year, Month, Patch).CompareTo((other.Year, other.Month, other.Patch));

    public static bool operator <(BackendAiVersion a, BackendAiVersion b) => a.CompareTo(b) < 0;

    public static bool operator >(BackendAiVersion a, BackendAiVersion b) => a.CompareTo(b) > 0;

    public static bool operator <=(BackendAiVersion a, BackendAiVersion b) => a.CompareTo(b) <= 0;

    public static bool operator >=(BackendAiVersion a, BackendAiVersion b) => a.CompareTo(b) >= 0;

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Year:00}.{Month:00}.{Patch}");

    /// <summary>
    /// Reads a final release (<c>24.03.5</c>, <c>24.3.5</c>, a leading <c>v</c> allowed). A pre-release
    /// (<c>24.09.0rc1</c>, <c>.dev0</c>, <c>a1</c>, <c>b2</c>) or a post-release is not one: the error says which.
    /// </summary>
    public static bool TryParse(string? text, out BackendAiVersion version, out string? error)
    {
        version = default;
        var t = text?.Trim() ?? "";
        var m = Final().Match(t);
        if (m.Success)
        {
            var month = int.Parse(m.Groups["m"].Value, CultureInfo.InvariantCulture);
            if (month is < 1 or > 12)
            {
                error = $"'{t}' is not a Backend.AI version: the middle number is a month (01–12).";
                return false;
            }

            version = new(
                int.Parse(m.Groups["y"].Value, CultureInfo.InvariantCulture),
                month,
                int.Parse(m.Groups["p"].Value, CultureInfo.InvariantCulture));
            error = null;
            return true;
        }

        error = NotFinal().IsMatch(t)
            ? $"'{t}' is a pre- or post-release, not a final release: upgrade paths go through final releases only."
            : $"'{t}' is not a Backend.AI version (YY.MM.patch, e.g. 24.03.5).";
        return false;
    }

    public static BackendAiVersion Parse(string text) =>
        TryParse(text, out var v, out var error) ? v : throw new FormatException(error);

    [GeneratedRegex(@"^v?(?<y>\d{2})\.(?<m>\d{1,2})\.(?<p>\d{1,4})$")]
    private static partial Regex Final();

    [GeneratedRegex(@"^v?\d{2}\.\d{1,2}\.\d{1,4}[.\-_]?(a|b|rc|c|alpha|beta|pre|preview|dev|post|r|rev)[.\-_]?\d*", RegexOptions.IgnoreCase)]
    private static partial Regex NotFinal();
}

/// <summary>A release series, <c>YY.MM</c>: what the upgrade guide calls a major release.</summary>
public readonly record struct BackendAiSeries(int Year, int Month) : IComparable<BackendAiSeries>
{
    public int CompareTo(BackendAiSeries other) => (Year, Month).CompareTo((other.Year, other.Month));

    public static bool operator <(BackendAiSeries a, BackendAiSeries b) => a.CompareTo(b) < 0;

    public static bool operator >(BackendAiSeries a, BackendAiSeries b) => a.CompareTo(b) > 0;

    public static bool operator <=(BackendAiSeries a, BackendAiSeries b) => a.CompareTo(b) <= 0;

    public static bool operator >=(BackendAiSeries a, BackendAiSeries b) => a.CompareTo(b) >= 0;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Year:00}.{Month:00}");
}
