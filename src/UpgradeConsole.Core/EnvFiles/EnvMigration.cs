using System.Text;
using System.Text.RegularExpressions;

namespace UpgradeConsole.Core.EnvFiles;

/// <summary>One change to an env file (set, rename, add or remove), with the reason a person can read.</summary>
public sealed record EnvChange(string Kind, string Key, string? NewKey, string Reason);

/// <summary>
/// The result of migrating an env file: either refused (with why, and no new text), or the new
/// text with every change and warning. A refused migration is never written, so the file stays
/// byte-identical.
/// </summary>
public sealed record EnvMigration(string OriginalText, string? NewText, IReadOnlyList<EnvChange> Changes, IReadOnlyList<string> Warnings, IReadOnlyList<string> Refusals)
{
    public bool Refused => Refusals.Count > 0;

    public bool Changed => NewText is not null && NewText != OriginalText;
}

/// <summary>
/// Rewrites <c>.fractal_server.env</c> from 2.16 to 2.17.0 (fractal-2.17.md §4.3–4.5), touching only
/// the statements it must: every other byte (comments, blank lines, order, quoting, <c>export</c>,
/// CRLF, the final newline) is kept. Migrating a migrated file changes nothing.
/// </summary>
public static partial class EnvMigrator
{
    /// <summary>Variables 2.17.0 reads from the database or not at all (§4.3), dropped with their reason.</summary>
    private static readonly (string Pattern, string Reason)[] Dropped =
    [
        ("FRACTAL_DEFAULT_ADMIN_EMAIL", "the first admin is made by `fractalctl init-db-data` in 2.17"),
        ("FRACTAL_DEFAULT_ADMIN_PASSWORD", "the first admin is made by `fractalctl init-db-data` in 2.17"),
        ("FRACTAL_DEFAULT_ADMIN_USERNAME", "the first admin is made by `fractalctl init-db-data` in 2.17"),
        ("FRACTAL_TASKS_DIR", "becomes resource.tasks_local_dir in the database (update-db-data reads it from the .old copy)"),
        ("FRACTAL_RUNNER_WORKING_BASE_DIR", "becomes resource.jobs_local_dir in the database (read from the .old copy)"),
        ("FRACTAL_LOCAL_CONFIG_FILE", "becomes resource.jobs_runner_config in the database"),
        ("FRACTAL_SLURM_CONFIG_FILE", "becomes resource.jobs_runner_config in the database (read from the .old copy)"),
        ("FRACTAL_SLURM_WORKER_PYTHON", "becomes resource.jobs_slurm_python_worker in the database (read from the .old copy)"),
        ("FRACTAL_TASKS_PYTHON_DEFAULT_VERSION", "becomes resource.tasks_python_config in the database (read from the .old copy)"),
        ("FRACTAL_TASKS_PYTHON_3_*", "becomes resource.tasks_python_config in the database (read from the .old copy)"),
        ("FRACTAL_PIXI_CONFIG_FILE", "becomes resource.tasks_pixi_config in the database (read from the .old copy)"),
        ("FRACTAL_SLURM_POLL_INTERVAL", "becomes resource.jobs_poll_interval in the database"),
        ("FRACTAL_PIP_CACHE_DIR", "becomes part of resource.tasks_python_config in the database"),
        ("FRACTAL_EMAIL_PASSWORD_KEY", "2.17 has no e-mail password encryption"),
    ];

    private static readonly string[] OAuthSuffixes = ["CLIENT_ID", "CLIENT_SECRET", "OIDC_CONFIGURATION_ENDPOINT", "REDIRECT_URL"];

    private static readonly string[] OAuth217 = ["OAUTH_CLIENT_NAME", "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_OIDC_CONFIG_ENDPOINT", "OAUTH_REDIRECT_URL"];

    /// <summary>Migrates a 2.16 env file to 2.17.0. With several 2.16 OAuth clients, <paramref name="keepOAuthClient"/> names the one to keep (2.17 has one).</summary>
    public static EnvMigration Migrate(string text, string? keepOAuthClient = null)
    {
        var file = DotEnvFile.Parse(text);
        var values = file.Values(interpolate: false);
        var changes = new List<EnvChange>();
        var warnings = new List<string>();
        var refusals = new List<string>();

        if (file.ErrorLines.Any())
        {
            warnings.Add($"python-dotenv cannot parse line(s) {string.Join(", ", file.ErrorLines)}; they are kept as they are and ignored by Fractal.");
        }

        // What happens to each statement: null = keep, "" = remove, otherwise its replacement text.
        var edits = new Dictionary<int, string>();
        var insertBefore = new Dictionary<int, string>();
        var entries = file.Entries;

        var backend = values.GetValueOrDefault("FRACTAL_RUNNER_BACKEND");
        switch (backend)
        {
            case "slurm":
                EditAll("FRACTAL_RUNNER_BACKEND", s => s.WithValue("slurm_sudo"));
                changes.Add(new("set", "FRACTAL_RUNNER_BACKEND", null, "slurm is called slurm_sudo in 2.17 (the same sudo-based SLURM runner)"));
                break;
            case "local" or null:
                refusals.Add("FRACTAL_RUNNER_BACKEND is " + (backend ?? "unset (local)") +
                    ": the 2.17.0 upgrade guide supports the automatic data migration only for SLURM instances; upgrade a local instance by hand.");
                break;
            case "slurm_ssh" or "slurm_sudo":
                break;
            default:
                refusals.Add($"FRACTAL_RUNNER_BACKEND={backend} is not a value 2.16 accepts (local, slurm, slurm_ssh); fix it first.");
                break;
        }

        foreach (var (from, to) in new[] { ("FRACTAL_VIEWER_AUTHORIZATION_SCHEME", "FRACTAL_DATA_AUTH_SCHEME"), ("FRACTAL_VIEWER_BASE_FOLDER", "FRACTAL_DATA_BASE_FOLDER") })
        {
            if (!Has(from))
            {
                continue;
            }

            if (Has(to))
            {
                RemoveAll(from);
                changes.Add(new("remove", from, null, $"{to} is already set; 2.17 reads only that name"));
            }
            else
            {
                EditAll(from, s => s.WithKey(to));
                changes.Add(new("rename", from, to, "renamed in 2.17, same values"));
            }
        }

        MigrateOAuth();

        foreach (var entry in entries.Where(e => e.Key is not null).Select(e => e.Key!).Distinct())
        {
            var dropped = Dropped.FirstOrDefault(d => d.Pattern.EndsWith('*') ? entry.StartsWith(d.Pattern[..^1], StringComparison.Ordinal) : entry == d.Pattern);
            if (dropped.Pattern is null)
            {
                continue;
            }

            RemoveAll(entry);
            changes.Add(new("remove", entry, null, dropped.Reason));
            if (entry == "FRACTAL_EMAIL_PASSWORD_KEY" && Has("FRACTAL_EMAIL_PASSWORD"))
            {
                warnings.Add("FRACTAL_EMAIL_PASSWORD holds a Fernet-encrypted password in 2.16; 2.17 reads it as plain text. Replace its value with the plain password by hand, or e-mails will fail to send.");
            }
        }

        var addGroup = !Has("FRACTAL_DEFAULT_GROUP_NAME");
        if (addGroup)
        {
            changes.Add(new("add", "FRACTAL_DEFAULT_GROUP_NAME", null, "keeps 'All' the default group every user joins; without it 'All' becomes an ordinary group in 2.17"));
        }

        if (refusals.Count > 0)
        {
            return new EnvMigration(text, null, changes, warnings, refusals);
        }

        var builder = new StringBuilder(text.Length + 64);
        for (var i = 0; i < entries.Count; i++)
        {
            if (insertBefore.TryGetValue(i, out var inserted))
            {
                builder.Append(inserted);
            }

            builder.Append(edits.TryGetValue(i, out var edit) ? edit : entries[i].Original);
        }

        if (addGroup)
        {
            var eol = text.Contains("\r\n", StringComparison.Ordinal) ? "\r\n" : "\n";
            if (builder.Length > 0 && builder[^1] != '\n')
            {
                builder.Append(eol);
            }

            builder.Append("FRACTAL_DEFAULT_GROUP_NAME=All").Append(eol);
        }

        return new EnvMigration(text, builder.ToString(), changes, warnings, refusals);

        bool Has(string key) => entries.Any(e => e.Key == key && !IsRemoved(e));

        bool IsRemoved(DotEnvEntry e) => edits.TryGetValue(IndexOf(e), out var edit) && Statement.Parse(e.Original).IsRemovalOf(edit);

        int IndexOf(DotEnvEntry e)
        {
            for (var i = 0; i < entries.Count; i++)
            {
                if (ReferenceEquals(entries[i], e))
                {
                    return i;
                }
            }

            return -1;
        }

        void EditAll(string key, Func<Statement, string> edit)
        {
            for (var i = 0; i < entries.Count; i++)
            {
                if (entries[i].Key == key)
                {
                    edits[i] = edit(Statement.Parse(edits.TryGetValue(i, out var earlier) ? earlier : entries[i].Original));
                }
            }
        }

        void RemoveAll(string key) => EditAll(key, s => s.Removed());

        void MigrateOAuth()
        {
            var clients = entries.Where(e => e.Key is not null && !OAuth217.Contains(e.Key))
                .Select(e => (Entry: e, Match: OAuthKey().Match(e.Key!)))
                .Where(x => x.Match.Success && OAuthSuffixes.Contains(x.Match.Groups["suffix"].Value))
                .GroupBy(x => x.Match.Groups["name"].Value, StringComparer.Ordinal)
                .ToList();
            if (clients.Count == 0)
            {
                return;
            }

            if (entries.Any(e => e.Key is "OAUTH_CLIENT_NAME"))
            {
                refusals.Add($"Both 2.16 OAuth variables ({string.Join(", ", clients.Select(c => c.Key))}) and 2.17's OAUTH_CLIENT_NAME are set; keep one style by hand.");
                return;
            }

            var keep = clients.Count == 1 ? clients[0] : clients.FirstOrDefault(c => string.Equals(c.Key, keepOAuthClient, StringComparison.OrdinalIgnoreCase));
            if (keep is null)
            {
                refusals.Add($"2.17 has a single OAuth client, and this file defines {clients.Count}: {string.Join(", ", clients.Select(c => c.Key))}. " +
                    "Choose the one to keep (--oauth-client NAME, or in the run's settings).");
                return;
            }

            var first = int.MaxValue;
            foreach (var (entry, match) in keep)
            {
                var suffix = match.Groups["suffix"].Value;
                var newKey = suffix == "OIDC_CONFIGURATION_ENDPOINT" ? "OAUTH_OIDC_CONFIG_ENDPOINT" : "OAUTH_" + suffix;
                EditAll(entry.Key!, s => s.WithKey(newKey));
                changes.Add(new("rename", entry.Key!, newKey, $"2.17 names its single OAuth client's settings without the client name"));
                first = Math.Min(first, IndexOf(entry));
            }

            var template = Statement.Parse(entries[first].Original);
            insertBefore[first] = template.Leading + template.Indent + template.Export + "OAUTH_CLIENT_NAME=" + keep.Key.ToLowerInvariant() + template.LineEnding;
            changes.Add(new("add", "OAUTH_CLIENT_NAME", null, $"the client '{keep.Key}' becomes 2.17's OAuth client, named in lower case"));
            foreach (var other in clients.Where(c => c != keep))
            {
                foreach (var (entry, _) in other)
                {
                    RemoveAll(entry.Key!);
                    changes.Add(new("remove", entry.Key!, null, $"2.17 has one OAuth client; '{keep.Key}' was chosen over '{other.Key}'"));
                }
            }
        }
    }

    /// <summary>
    /// The <c>.fractal_server.env.old</c> that update-db-data reads: the original file, plus
    /// FRACTAL_SLURM_WORKER_PYTHON when it is missing (the upgrade guide's step 1).
    /// </summary>
    public static string OldCopy(string text, string? workerPython)
    {
        var values = DotEnvFile.Parse(text).Values(interpolate: false);
        if (values.GetValueOrDefault("FRACTAL_SLURM_WORKER_PYTHON") is { Length: > 0 } || string.IsNullOrEmpty(workerPython))
        {
            return text;
        }

        var eol = text.Contains("\r\n", StringComparison.Ordinal) ? "\r\n" : "\n";
        var prefix = text.Length > 0 && !text.EndsWith('\n') ? eol : "";
        return text + prefix + "FRACTAL_SLURM_WORKER_PYTHON=" + Statement.FormatValue(workerPython, quote: null) + eol;
    }

    /// <summary>A readable line diff (<c>-</c> removed, <c>+</c> added, two lines of context); secret values masked.</summary>
    public static string Diff(string before, string after)
    {
        var a = SplitLines(before);
        var b = SplitLines(after);
        var lcs = new int[a.Length + 1, b.Length + 1];
        for (var i = a.Length - 1; i >= 0; i--)
        {
            for (var j = b.Length - 1; j >= 0; j--)
            {
                lcs[i, j] = a[i] == b[j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
            }
        }

        var ops = new List<(char Op, string Line)>();
        int x = 0, y = 0;
        while (x < a.Length || y < b.Length)
        {
            if (x < a.Length && y < b.Length && a[x] == b[y])
            {
                ops.Add((' ', a[x++]));
                y++;
            }
            else if (y < b.Length && (x == a.Length || lcs[x, y + 1] > lcs[x + 1, y]))
            {
                ops.Add(('+', b[y++]));
            }
            else
            {
                ops.Add(('-', a[x++]));
            }
        }

        var output = new StringBuilder();
        for (var k = 0; k < ops.Count; k++)
        {
            var near = Enumerable.Range(Math.Max(0, k - 2), Math.Min(ops.Count, k + 3) - Math.Max(0, k - 2)).Any(n => ops[n].Op != ' ');
            if (near)
            {
                output.Append(ops[k].Op).Append(' ').Append(MaskLine(ops[k].Line)).Append('\n');
            }
            else if (k > 0 && output.Length > 0 && !output.ToString().EndsWith("  …\n", StringComparison.Ordinal))
            {
                output.Append("  …\n");
            }
        }

        return output.ToString();
    }

    /// <summary>Masks the value of a KEY=value line whose key names a secret.</summary>
    public static string MaskLine(string line)
    {
        var match = SecretLine().Match(line);
        return match.Success ? match.Groups["head"].Value + Fractal.FractalDiscovery.Mask : line;
    }

    private static string[] SplitLines(string text) => text.Length == 0 ? [] : text.Replace("\r\n", "\n", StringComparison.Ordinal).TrimEnd('\n').Split('\n');

    [GeneratedRegex("^OAUTH_(?<name>[^_]+)_(?<suffix>.+)$")]
    private static partial Regex OAuthKey();

    [GeneratedRegex(@"^(?<head>\s*(export\s+)?[A-Za-z0-9_]*(PASSWORD|SECRET|TOKEN|_KEY)[A-Za-z0-9_]*\s*=\s*).+$")]
    private static partial Regex SecretLine();
}

/// <summary>One statement's text split into its parts, so a key or value can change while the rest stays.</summary>
internal sealed partial record Statement(string Leading, string Indent, string Export, string Key, string Middle, string Value, string Tail, string LineEnding)
{
    public static Statement Parse(string original)
    {
        var match = Shape().Match(original);
        if (!match.Success)
        {
            throw new InvalidOperationException("Not a KEY=VALUE statement: " + original);
        }

        return new Statement(
            match.Groups["leading"].Value, match.Groups["indent"].Value, match.Groups["export"].Value, match.Groups["key"].Value,
            match.Groups["middle"].Value, match.Groups["value"].Value, match.Groups["tail"].Value, match.Groups["eol"].Value);
    }

    /// <summary>Removing a statement keeps the blank lines before it (they belong to the file, not to it).</summary>
    public string Removed() => Leading;

    public bool IsRemovalOf(string edit) => edit == Leading;

    public string WithKey(string key) => Leading + Indent + Export + key + Middle + Value + Tail + LineEnding;

    /// <summary>A new value written in the statement's own quoting style.</summary>
    public string WithValue(string value)
    {
        var quote = Value.Length > 0 && Value[0] is '\'' or '"' ? Value[0] : (char?)null;
        return Leading + Indent + Export + Key + (Middle.Length > 0 ? Middle : "=") + FormatValue(value, quote) + Tail + LineEnding;
    }

    public static string FormatValue(string value, char? quote)
    {
        if (quote == '"')
        {
            return "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
        }

        if (quote == '\'' || value.Any(c => char.IsWhiteSpace(c) || c is '#' or '\'' or '"' or '\\' or '$'))
        {
            return "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";
        }

        return value;
    }

    // leading blank lines · indentation · export · key · "=" with spaces · value (quoted or bare) · comment/spaces · line end
    [GeneratedRegex(@"^(?<leading>(?:[ \t]*(?:\r\n|\n|\r))*)(?<indent>[ \t]*)(?<export>export[ \t]+)?(?<key>'[^']+'|[^=#\s]+)(?<middle>[ \t]*=[ \t]*|)(?<value>'(?:\\'|[^'])*'|""(?:\\""|[^""])*""|[^\r\n]*?)(?<tail>[ \t]*(?:#[^\r\n]*)?)(?<eol>\r\n|\n|\r|)$", RegexOptions.Singleline)]
    private static partial Regex Shape();
}
