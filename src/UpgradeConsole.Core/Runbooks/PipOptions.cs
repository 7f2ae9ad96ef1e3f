namespace UpgradeConsole.Core.Runbooks;

/// <summary>
/// Extra options for <c>pip install</c>, as an Admin types them on a target ("--no-index --find-links
/// /srv/wheels", "--timeout 60"): words separated by spaces, each passed to the shell single-quoted
/// (<see cref="FractalScripts.PipInstall"/>). pip takes an option's value in the same word
/// (<c>--timeout=60</c>) or in the next one (<c>--timeout 60</c>); a word that is not an option is
/// accepted only as the value of the option before it.
/// </summary>
public static class PipOptions
{
    /// <summary>
    /// The <c>pip install</c> options that take a value (pip 25's <c>pip install --help</c>, general and
    /// install options, long and short spellings). Options not listed are flags: a word after them is refused.
    /// </summary>
    private static readonly HashSet<string> TakeAValue = new(StringComparer.Ordinal)
    {
        "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-t", "--target", "--platform", "--python-version",
        "--implementation", "--abi", "--root", "--prefix", "--src", "--upgrade-strategy", "-C", "--config-settings",
        "--global-option", "--no-binary", "--only-binary", "--progress-bar", "--root-user-action", "--report",
        "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--group",
        "--log", "--proxy", "--retries", "--timeout", "--exists-action", "--trusted-host", "--cert", "--client-cert",
        "--cache-dir", "--use-feature", "--use-deprecated", "--keyring-provider", "--resume-retries", "--python",
    };

    /// <summary>The words of <paramref name="text"/>, in order.</summary>
    public static IReadOnlyList<string> Split(string? text) => (text ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Null when pip would accept the words as options; otherwise one sentence naming the first word it would not.</summary>
    public static string? Check(string? text)
    {
        if (text is null)
        {
            return null;
        }

        if (text.Any(char.IsControl))
        {
            return "pip options are one line of words, without control characters.";
        }

        var words = Split(text);
        for (var i = 0; i < words.Count; i++)
        {
            var word = words[i];
            if (word.StartsWith('-'))
            {
                var name = word.Split('=', 2)[0];
                if (TakeAValue.Contains(name) && !word.Contains('=', StringComparison.Ordinal))
                {
                    if (i + 1 >= words.Count)
                    {
                        return $"{name} needs a value ({name} VALUE or {name}=VALUE).";
                    }

                    i++;
                }

                continue;
            }

            // Kept from before: a path or a URL on its own (a requirement file, a wheel directory).
            if (word.StartsWith('/') || word.Contains("://", StringComparison.Ordinal))
            {
                continue;
            }

            return $"'{word}' is not a pip option, nor the value of one (pip options are words such as --no-index --find-links /srv/wheels --timeout 60).";
        }

        return null;
    }
}
