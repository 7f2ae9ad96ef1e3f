using System.Text.RegularExpressions;

namespace UpgradeConsole.Core.Runbooks;

/// <summary>
/// Package versions as PEP 440 writes them in normalized form (what <c>pip show</c> prints): an
/// optional epoch, release segments, an optional pre-release (a, b, rc), post- and dev-release, and a
/// local label. A version from a person or from a target is checked here where it enters, so nothing
/// else can ride along into a command.
/// </summary>
public static partial class Pep440
{
    public static bool IsValid(string? version) => version is { Length: > 0 and <= 128 } && Normalized().IsMatch(version);

    [GeneratedRegex(@"^([0-9]+!)?[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?(\+[a-z0-9]+(\.[a-z0-9]+)*)?\z", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: 1000)]
    private static partial Regex Normalized();
}
