namespace UpgradeConsole.Core.Fractal;

/// <summary>One user after 2.17.0's data migration: the profile they are linked to (null: none) and their project_dir.</summary>
public sealed record MigratedUser(int Id, string Email, string? Profile, string? ProjectDir);

/// <summary>What a data migration left in a 2.17 database.</summary>
public sealed record MigratedData(IReadOnlyList<MigratedUser> Users, IReadOnlyList<(string Name, string Type)> Resources);

/// <summary>What the plan predicted for one user: migrated to a profile with a project_dir, left out, or blocking.</summary>
public sealed record PredictedUser(int Id, string Email, MigrationOutcome Outcome, string? Profile, string? ProjectDir)
{
    public static PredictedUser From(UserVerdict verdict) => new(verdict.User.Id, verdict.User.Email, verdict.Outcome, verdict.ProfileName,
        verdict.Outcome == MigrationOutcome.Migrated && verdict.User.ProjectDir is { } dir ? MigrationComparison.NormalizePath(dir) : null);
}

/// <summary>
/// The rehearsal's result of update-db-data set beside the plan's prediction (<see cref="MigrationRules"/>): each
/// difference is something the preflight did not foresee on this data.
/// </summary>
public sealed record MigrationComparison(IReadOnlyList<string> Matches, IReadOnlyList<string> Findings)
{
    /// <summary>The resource name 2.17.0's data migration gives its one resource (fractal-2.17.md §3.2 b).</summary>
    public const string ResourceName = "Resource Name";

    /// <summary>Like Python's <c>os.path.normpath</c> on an absolute path, as <c>normalize_url</c> stores project_dir.</summary>
    public static string NormalizePath(string path)
    {
        var trimmed = path.Trim();
        return trimmed.StartsWith('/') ? ProjectDirRule.Normalize(trimmed) : trimmed;
    }

    public static MigrationComparison Compare(IReadOnlyList<PredictedUser> predicted, string predictedResourceType, MigratedData actual)
    {
        var matches = new List<string>();
        var findings = new List<string>();
        var byId = actual.Users.ToDictionary(u => u.Id);
        foreach (var p in predicted)
        {
            if (!byId.Remove(p.Id, out var a))
            {
                findings.Add($"{p.Email}: predicted {Describe(p)}, but the user is not in the rehearsed database.");
                continue;
            }

            var expectedProfile = p.Outcome == MigrationOutcome.Migrated ? p.Profile : null;
            if (a.Profile != expectedProfile)
            {
                findings.Add($"{p.Email}: predicted {Describe(p)}, got {(a.Profile is null ? "no profile" : "profile " + a.Profile)}.");
            }
            else if (p.Outcome == MigrationOutcome.Migrated && p.ProjectDir is not null && a.ProjectDir != p.ProjectDir)
            {
                findings.Add($"{p.Email}: predicted project_dir {p.ProjectDir}, got {a.ProjectDir ?? "none"}.");
            }
            else
            {
                matches.Add($"{p.Email}: {(a.Profile is null ? "left out (no profile)" : "profile " + a.Profile + ", project_dir " + a.ProjectDir)}, as predicted");
            }
        }

        foreach (var extra in byId.Values)
        {
            findings.Add($"{extra.Email}: not in the plan's prediction (added since?), got {(extra.Profile is null ? "no profile" : "profile " + extra.Profile)}.");
        }

        if (actual.Resources is [var only] && only.Name == ResourceName && only.Type == predictedResourceType)
        {
            matches.Add($"one resource \"{only.Name}\" of type {only.Type}, as predicted");
        }
        else
        {
            findings.Add($"resources: predicted one \"{ResourceName}\" of type {predictedResourceType}, got " +
                (actual.Resources.Count == 0 ? "none" : string.Join(", ", actual.Resources.Select(r => $"\"{r.Name}\" ({r.Type})"))) + ".");
        }

        return new MigrationComparison(matches, findings);
    }

    private static string Describe(PredictedUser p) => p.Outcome switch
    {
        MigrationOutcome.Migrated => $"profile {p.Profile}" + (p.ProjectDir is null ? "" : $", project_dir {p.ProjectDir}"),
        MigrationOutcome.LeftOut => "left out (no profile)",
        _ => "a blocker (update-db-data stops)",
    };
}
