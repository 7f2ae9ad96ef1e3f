using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace UpgradeConsole.Core.Fractal;

/// <summary>
/// A user of a fractal-server 2.16 database as the 2.17.0 data migration sees it: the
/// <c>user_oauth</c> row, its <c>user_settings</c> row (if any) and its groups.
/// </summary>
public sealed record FractalUser
{
    public int Id { get; init; }

    public string Email { get; init; } = "";

    /// <summary>The free-text Fractal username (dropped by 2.17.0).</summary>
    public string? Username { get; init; }

    public bool IsActive { get; init; }

    public bool IsVerified { get; init; }

    public bool IsSuperuser { get; init; }

    /// <summary><c>user_oauth.user_settings_id</c>; null means the user has no settings row.</summary>
    public int? SettingsId { get; init; }

    public string? ProjectDir { get; init; }

    public string? SlurmUser { get; init; }

    /// <summary><c>user_settings.slurm_accounts</c> as stored (a JSON list).</summary>
    public string SlurmAccounts { get; init; } = "[]";

    public string? SshHost { get; init; }

    public string? SshUsername { get; init; }

    public string? SshPrivateKeyPath { get; init; }

    public string? SshTasksDir { get; init; }

    public string? SshJobsDir { get; init; }

    public IReadOnlyList<string> Groups { get; init; } = [];

    /// <summary>
    /// A fingerprint of every value a fix may change. A write carries the version its page showed;
    /// if the row changed since, the write is refused (optimistic concurrency).
    /// </summary>
    public string Version
    {
        get
        {
            var text = JsonSerializer.Serialize(new object?[] { IsActive, IsVerified, SettingsId, ProjectDir, SlurmUser, SshUsername, SshPrivateKeyPath, SshTasksDir, SshJobsDir });
            return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];
        }
    }

    /// <summary>The part of the e-mail before '@' (for project_dir patterns).</summary>
    public string EmailLocal => Email.Split('@')[0];
}

public enum MigrationOutcome
{
    /// <summary>Active and verified, with everything the backend needs: linked to a profile.</summary>
    Migrated,

    /// <summary>Not active, or not verified: untouched by the migration, so unable to work after it.</summary>
    LeftOut,

    /// <summary>Active and verified but missing something: update-db-data stops with exit 1.</summary>
    Blocks,
}

/// <summary>What 2.17.0 will do with one user, and why.</summary>
public sealed record UserVerdict(FractalUser User, MigrationOutcome Outcome, IReadOnlyList<string> Reasons, string? ProfileName);

/// <summary>
/// The rules of fractal-server 2.17.0's <c>fix_db</c> (fractal-2.17.md §3.2 c), applied to a 2.16
/// database before anything changes, so an admin sees who blocks the upgrade and who loses access.
/// </summary>
public static class MigrationRules
{
    /// <summary>Backends as the 2.17 resource type: <c>slurm</c> is renamed <c>slurm_sudo</c>.</summary>
    public static string ResourceType(string? backend16) => backend16 switch
    {
        "slurm" or "slurm_sudo" => "slurm_sudo",
        "slurm_ssh" => "slurm_ssh",
        _ => "local",
    };

    public static IReadOnlyList<UserVerdict> Classify(IEnumerable<FractalUser> users, string? backend16)
    {
        var type = ResourceType(backend16);
        var verdicts = new List<UserVerdict>();
        var profiles = new Dictionary<string, (string Data, List<int> Users)>(StringComparer.Ordinal);
        foreach (var user in users.OrderBy(u => u.Id))
        {
            if (!(user.IsActive && user.IsVerified))
            {
                var why = !user.IsActive && !user.IsVerified ? "not active and not verified" : !user.IsActive ? "not active" : "not verified";
                verdicts.Add(new UserVerdict(user, MigrationOutcome.LeftOut, [$"{why}: the migration skips this user, who then has no profile and cannot work in 2.17"], null));
                continue;
            }

            var reasons = new List<string>();
            if (user.SettingsId is null)
            {
                reasons.Add("has no settings row (user_settings_id is NULL)");
                verdicts.Add(new UserVerdict(user, MigrationOutcome.Blocks, reasons, null));
                continue;
            }

            if (ProjectDirRule.MigrationProblem(user.ProjectDir) is { } projectProblem)
            {
                reasons.Add("project_dir " + projectProblem);
            }

            if (SlurmAccountsProblem(user.SlurmAccounts) is { } accounts)
            {
                reasons.Add(accounts);
            }

            string? username = null;
            string profileData;
            switch (type)
            {
                case "slurm_sudo":
                    username = user.SlurmUser;
                    if (string.IsNullOrWhiteSpace(user.SlurmUser))
                    {
                        reasons.Add("has no slurm_user (the SLURM account jobs run as)");
                    }

                    profileData = type + "\0" + username;
                    break;
                case "slurm_ssh":
                    username = user.SshUsername;
                    foreach (var (name, value) in new[] { ("ssh_username", user.SshUsername), ("ssh_private_key_path", user.SshPrivateKeyPath), ("ssh_tasks_dir", user.SshTasksDir), ("ssh_jobs_dir", user.SshJobsDir) })
                    {
                        if (string.IsNullOrWhiteSpace(value))
                        {
                            reasons.Add($"has no {name}");
                        }
                        else if (name != "ssh_username" && !value.StartsWith('/'))
                        {
                            reasons.Add($"{name} '{value}' is not absolute");
                        }
                    }

                    profileData = string.Join('\0', type, username, user.SshPrivateKeyPath, Normalize(user.SshTasksDir), Normalize(user.SshJobsDir));
                    break;
                default:
                    profileData = type;
                    break;
            }

            var profileName = "Profile " + (username ?? "None");
            if (reasons.Count == 0)
            {
                var key = username ?? "";
                if (profiles.TryGetValue(key, out var existing))
                {
                    if (existing.Data != profileData)
                    {
                        reasons.Add($"shares the username '{username}' with user(s) {string.Join(", ", existing.Users)} but with other SSH settings (profile data mismatch)");
                    }
                    else
                    {
                        existing.Users.Add(user.Id);
                    }
                }
                else
                {
                    profiles[key] = (profileData, [user.Id]);
                }
            }

            verdicts.Add(reasons.Count == 0
                ? new UserVerdict(user, MigrationOutcome.Migrated, [$"migrated to profile \"{profileName}\""], profileName)
                : new UserVerdict(user, MigrationOutcome.Blocks, reasons, null));
        }

        // A mismatch blocks both sides: mark the first user of a username group too.
        var mismatched = verdicts.Where(v => v.Reasons.Any(r => r.Contains("profile data mismatch", StringComparison.Ordinal)))
            .Select(v => type == "slurm_ssh" ? v.User.SshUsername : v.User.SlurmUser).ToHashSet();
        return verdicts.Select(v => v.Outcome == MigrationOutcome.Migrated && mismatched.Contains(type == "slurm_ssh" ? v.User.SshUsername : v.User.SlurmUser)
            ? v with { Outcome = MigrationOutcome.Blocks, Reasons = ["another user with the same username has other SSH settings (profile data mismatch)"], ProfileName = null }
            : v).ToList();
    }

    private static string? Normalize(string? path) => path is null ? null : ProjectDirRule.Normalize(path);

    private static string? SlurmAccountsProblem(string json)
    {
        try
        {
            var accounts = JsonSerializer.Deserialize<List<string?>>(json) ?? [];
            if (accounts.Any(string.IsNullOrWhiteSpace))
            {
                return "slurm_accounts holds an empty name";
            }

            return accounts.Count != accounts.Distinct(StringComparer.Ordinal).Count() ? "slurm_accounts holds duplicates" : null;
        }
        catch (JsonException)
        {
            return "slurm_accounts is not a JSON list of names";
        }
    }
}

/// <summary>
/// The checks Fractal applies to a <c>project_dir</c>: non-empty after trimming, absolute (the
/// 2.17.0 migration's <c>normalize_url</c> raises otherwise), and none of the characters Fractal
/// forbids in paths, which would also be shell metacharacters on the cluster.
/// </summary>
public static class ProjectDirRule
{
    public const string Forbidden = "`#$&*()\\|[]{};<>?!";

    /// <summary>Null when valid; otherwise what is wrong, in words.</summary>
    public static string? Check(string? value)
    {
        if (value is null || value.Trim().Length == 0)
        {
            return "is not set";
        }

        var trimmed = value.Trim();
        if (!trimmed.StartsWith('/'))
        {
            return $"'{trimmed}' is not an absolute path (it must start with /)";
        }

        var bad = trimmed.Where(c => Forbidden.Contains(c, StringComparison.Ordinal) || char.IsControl(c)).Distinct().ToList();
        return bad.Count > 0 ? $"'{trimmed}' contains forbidden characters: {string.Join(" ", bad.Select(c => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString()))}" : null;
    }

    /// <summary>What stops the 2.17.0 migration itself: no value (exit 1), or a relative one (ValueError).</summary>
    public static string? MigrationProblem(string? value) =>
        value is null ? "is not set"
        : !value.StartsWith('/') ? $"'{value}' is not an absolute path (the migration stops on it)"
        : null;

    /// <summary>What the migration stores: <c>os.path.normpath</c> of the trimmed path.</summary>
    public static string Normalize(string path)
    {
        var parts = new List<string>();
        foreach (var part in path.Trim().Split('/'))
        {
            if (part is "" or ".")
            {
                continue;
            }

            if (part == "..")
            {
                if (parts.Count > 0)
                {
                    parts.RemoveAt(parts.Count - 1);
                }

                continue;
            }

            parts.Add(part);
        }

        return "/" + string.Join('/', parts);
    }

    /// <summary>Fills a pattern such as <c>/shared/projects/{slurm_user}</c> for one user; null when a placeholder has no value.</summary>
    public static string? Apply(string pattern, FractalUser user)
    {
        string? Value(string name) => name switch
        {
            "slurm_user" => user.SlurmUser,
            "email_local" => user.EmailLocal,
            "email" => user.Email,
            "username" => user.Username,
            "ssh_username" => user.SshUsername,
            "id" => user.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
            _ => null,
        };

        var result = new StringBuilder();
        var i = 0;
        while (i < pattern.Length)
        {
            if (pattern[i] == '{')
            {
                var end = pattern.IndexOf('}', i);
                if (end < 0)
                {
                    return null;
                }

                var value = Value(pattern[(i + 1)..end]);
                if (string.IsNullOrEmpty(value))
                {
                    return null;
                }

                result.Append(value);
                i = end + 1;
            }
            else
            {
                result.Append(pattern[i++]);
            }
        }

        return result.ToString();
    }

    /// <summary>The placeholders a pattern may use.</summary>
    public static IReadOnlyList<string> Placeholders { get; } = ["{slurm_user}", "{email_local}", "{email}", "{username}", "{ssh_username}", "{id}"];
}
