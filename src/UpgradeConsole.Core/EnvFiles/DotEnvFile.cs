using System.Text;
using System.Text.RegularExpressions;

namespace UpgradeConsole.Core.EnvFiles;

/// <summary>
/// One statement of a dotenv file: its exact original text (so untouched statements are written
/// back byte for byte), and what python-dotenv reads from it.
/// </summary>
/// <param name="Original">The statement's text as in the file, including its line ending.</param>
/// <param name="Key">The variable name, or null for blank lines, comments and unparseable text.</param>
/// <param name="Value">The value; null for a bare <c>KEY</c> line (python-dotenv's None).</param>
/// <param name="Line">1-based line where the statement starts.</param>
/// <param name="IsError">python-dotenv could not parse it and skips it with a warning.</param>
public sealed record DotEnvEntry(string Original, string? Key, string? Value, int Line, bool IsError);

/// <summary>
/// A <c>.fractal_server.env</c>-style file read with python-dotenv's rules (the parser of
/// python-dotenv 1.1.x that fractal-server 2.16 and 2.17 use): <c>export</c>, comments, inline
/// comments after whitespace, single- and double-quoted values with their escapes, multi-line
/// quoted values, bare keys, <c>${VAR}</c> / <c>${VAR:-default}</c> interpolation.
/// </summary>
public sealed partial class DotEnvFile
{
    private DotEnvFile(IReadOnlyList<DotEnvEntry> entries) => Entries = entries;

    public IReadOnlyList<DotEnvEntry> Entries { get; }

    /// <summary>The file's text again: the originals concatenated (identical to what was parsed).</summary>
    public string Text => string.Concat(Entries.Select(e => e.Original));

    public static DotEnvFile Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var reader = new Reader(text);
        var entries = new List<DotEnvEntry>();
        while (reader.HasNext)
        {
            entries.Add(ParseBinding(reader));
        }

        return new DotEnvFile(entries);
    }

    /// <summary>
    /// What python-dotenv's <c>dotenv_values</c> returns: later duplicates win, bare keys are null,
    /// and <c>${VAR}</c> resolves against <paramref name="environment"/> then earlier keys of the file.
    /// </summary>
    public IReadOnlyDictionary<string, string?> Values(IReadOnlyDictionary<string, string?>? environment = null, bool interpolate = true)
    {
        var resolved = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var entry in Entries)
        {
            if (entry.Key is null)
            {
                continue;
            }

            if (!interpolate || entry.Value is null)
            {
                resolved[entry.Key] = entry.Value;
                continue;
            }

            resolved[entry.Key] = Interpolate(entry.Value, name =>
                resolved.TryGetValue(name, out var fromFile) ? fromFile
                : environment is not null && environment.TryGetValue(name, out var fromEnv) ? fromEnv
                : null);
        }

        return resolved;
    }

    /// <summary>The value python-dotenv reads for <paramref name="key"/>, or null when absent or bare.</summary>
    public string? Get(string key) => Values().GetValueOrDefault(key);

    /// <summary>Line numbers of statements python-dotenv would skip with a warning.</summary>
    public IEnumerable<int> ErrorLines => Entries.Where(e => e.IsError).Select(e => e.Line);

    private static string Interpolate(string value, Func<string, string?> lookup) =>
        PosixVariable().Replace(value, m =>
        {
            var name = m.Groups["name"].Value;
            var fallback = m.Groups["default"].Success ? m.Groups["default"].Value : "";
            return lookup(name) ?? fallback;
        });

    private static DotEnvEntry ParseBinding(Reader reader)
    {
        reader.SetMark();
        try
        {
            reader.ReadRegex(MultilineWhitespace());
            if (!reader.HasNext)
            {
                return reader.Entry(null, null, isError: false);
            }

            reader.ReadRegex(Export());
            var key = ParseKey(reader);
            reader.ReadRegex(Whitespace());
            string? value = null;
            if (reader.Peek(1) == "=")
            {
                reader.ReadRegex(EqualSign());
                value = ParseValue(reader);
            }

            reader.ReadRegex(Comment());
            reader.ReadRegex(EndOfLine());
            return reader.Entry(key, value, isError: false);
        }
        catch (FormatException)
        {
            reader.ReadRegex(RestOfLine());
            return reader.Entry(null, null, isError: true);
        }
    }

    private static string? ParseKey(Reader reader)
    {
        var c = reader.Peek(1);
        if (c == "#")
        {
            return null;
        }

        return c == "'" ? reader.ReadRegex(SingleQuotedKey())[1].Value : reader.ReadRegex(UnquotedKey())[1].Value;
    }

    private static string ParseValue(Reader reader)
    {
        var c = reader.Peek(1);
        return c switch
        {
            "'" => DecodeEscapes(SingleQuoteEscapes(), reader.ReadRegex(SingleQuotedValue())[1].Value),
            "\"" => DecodeEscapes(DoubleQuoteEscapes(), reader.ReadRegex(DoubleQuotedValue())[1].Value),
            "" or "\n" or "\r" => "",
            _ => InlineComment().Replace(reader.ReadRegex(UnquotedValue())[1].Value, "").TrimEnd(),
        };
    }

    private static string DecodeEscapes(Regex escapes, string value) =>
        escapes.Replace(value, m => m.Value[1] switch
        {
            'a' => "\a",
            'b' => "\b",
            'f' => "\f",
            'n' => "\n",
            'r' => "\r",
            't' => "\t",
            'v' => "\v",
            var other => other.ToString(),
        });

    private sealed class Reader(string text)
    {
        private int _position;
        private int _line = 1;
        private int _markPosition;
        private int _markLine = 1;

        public bool HasNext => _position < text.Length;

        public void SetMark()
        {
            _markPosition = _position;
            _markLine = _line;
        }

        public DotEnvEntry Entry(string? key, string? value, bool isError) =>
            new(text[_markPosition.._position], key, value, _markLine, isError);

        public string Peek(int count) => text.Substring(_position, Math.Min(count, text.Length - _position));

        public GroupCollection ReadRegex(Regex regex)
        {
            var match = regex.Match(text, _position);
            if (!match.Success || match.Index != _position)
            {
                throw new FormatException("pattern not found");
            }

            _line += Newline().Count(match.Value);
            _position += match.Length;
            return match.Groups;
        }
    }

    // The patterns of python-dotenv's parser; \G anchors each at the reader's position.
    [GeneratedRegex(@"\r\n|\n|\r")]
    private static partial Regex Newline();

    [GeneratedRegex(@"\G\s*", RegexOptions.Multiline)]
    private static partial Regex MultilineWhitespace();

    [GeneratedRegex(@"\G[^\S\r\n]*")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"\G(?:export[^\S\r\n]+)?")]
    private static partial Regex Export();

    [GeneratedRegex(@"\G'([^']+)'")]
    private static partial Regex SingleQuotedKey();

    [GeneratedRegex(@"\G([^=\#\s]+)")]
    private static partial Regex UnquotedKey();

    [GeneratedRegex(@"\G(=[^\S\r\n]*)")]
    private static partial Regex EqualSign();

    [GeneratedRegex(@"\G'((?:\\'|[^'])*)'")]
    private static partial Regex SingleQuotedValue();

    [GeneratedRegex(@"\G""((?:\\""|[^""])*)""")]
    private static partial Regex DoubleQuotedValue();

    [GeneratedRegex(@"\G([^\r\n]*)")]
    private static partial Regex UnquotedValue();

    [GeneratedRegex(@"\G(?:[^\S\r\n]*#[^\r\n]*)?")]
    private static partial Regex Comment();

    [GeneratedRegex(@"\G[^\S\r\n]*(?:\r\n|\n|\r|$)")]
    private static partial Regex EndOfLine();

    [GeneratedRegex(@"\G[^\r\n]*(?:\r|\n|\r\n)?")]
    private static partial Regex RestOfLine();

    [GeneratedRegex(@"\\[\\'""abfnrtv]")]
    private static partial Regex DoubleQuoteEscapes();

    [GeneratedRegex(@"\\[\\']")]
    private static partial Regex SingleQuoteEscapes();

    [GeneratedRegex(@"\s+#.*")]
    private static partial Regex InlineComment();

    [GeneratedRegex(@"\$\{(?<name>[^\}:]*)(?::-(?<default>[^\}]*))?\}")]
    private static partial Regex PosixVariable();
}
