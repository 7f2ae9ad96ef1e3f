namespace UpgradeConsole.Core.Accounts;

/// <summary>The three roles of the dashboard, from most to least privileged.</summary>
public static class Roles
{
    /// <summary>Manages users, targets, settings; may override failed checks.</summary>
    public const string Admin = "Admin";

    /// <summary>Plans, starts, approves and resumes runs; fixes preflight findings.</summary>
    public const string Operator = "Operator";

    /// <summary>Reads everything they are allowed to see; changes nothing.</summary>
    public const string Viewer = "Viewer";

    public static IReadOnlyList<string> All { get; } = [Admin, Operator, Viewer];

    /// <summary>Rank used to compare roles: a higher number may do everything a lower one may.</summary>
    public static int Rank(string? role) => role switch
    {
        Admin => 3,
        Operator => 2,
        Viewer => 1,
        _ => 0,
    };

    public static bool IsKnown(string? role) => Rank(role) > 0;

    /// <summary>The canonical spelling of a role typed by a person, or null.</summary>
    public static string? Normalize(string? role) =>
        All.FirstOrDefault(r => string.Equals(r, role?.Trim(), StringComparison.OrdinalIgnoreCase));
}
