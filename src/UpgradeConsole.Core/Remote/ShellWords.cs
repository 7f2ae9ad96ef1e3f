using System.Text;

namespace UpgradeConsole.Core.Remote;

/// <summary>
/// The one place that turns a value into a POSIX shell word. Every value a person typed (paths,
/// versions, names, user fields) reaches a remote shell through <see cref="Quote"/> or a validated type.
/// </summary>
public static class ShellWords
{
    /// <summary>
    /// Quotes <paramref name="value"/> so any POSIX shell reads it back as exactly one word with exactly
    /// these characters: single quotes around everything, and each embedded single quote as <c>'\''</c>.
    /// Nothing inside single quotes is special to the shell: no <c>$</c>, backtick, backslash, glob or newline.
    /// </summary>
    /// <exception cref="ArgumentException">The value contains a NUL character, which no shell word can carry.</exception>
    public static string Quote(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException("A shell word cannot contain a NUL character.", nameof(value));
        }

        var builder = new StringBuilder(value.Length + 2);
        builder.Append('\'');
        foreach (var c in value)
        {
            if (c == '\'')
            {
                builder.Append("'\\''");
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.Append('\'').ToString();
    }

    /// <summary>Quotes each word and joins them with spaces: a safe command line.</summary>
    public static string Join(params IEnumerable<string> words) => string.Join(' ', words.Select(Quote));

    /// <summary>
    /// A path for a remote shell: <c>~/rest</c> becomes <c>"$HOME"/'rest'</c> (so the home directory
    /// still expands), anything else is quoted whole.
    /// </summary>
    public static string QuotePath(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path == "~")
        {
            return "\"$HOME\"";
        }

        return path.StartsWith("~/", StringComparison.Ordinal) ? "\"$HOME\"/" + Quote(path[2..]) : Quote(path);
    }

    /// <summary>True for a portable environment variable name (letters, digits, underscore; not starting with a digit).</summary>
    public static bool IsVariableName(string name) =>
        name.Length > 0 && !char.IsAsciiDigit(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
}
