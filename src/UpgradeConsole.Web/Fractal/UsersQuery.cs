using UpgradeConsole.Core.Fractal;

namespace UpgradeConsole.Web.Fractal;

/// <summary>Filter, search, sort and page of the users grid (and of the API's list).</summary>
public sealed record UsersQuery(string Filter = "all", string? Search = null, string Sort = "id", int Page = 1, bool Descending = false, int PageSize = UsersQuery.DefaultPageSize)
{
    public const int DefaultPageSize = 50;

    /// <summary>The filters the page and the API know.</summary>
    public static IReadOnlyList<string> Filters { get; } = ["all", "blocking", "left-out", "migrated"];

    /// <summary>The sorts the page and the API know (anything else sorts by id).</summary>
    public static IReadOnlyList<string> Sorts { get; } = ["id", "email", "outcome", "project_dir"];

    public IEnumerable<UserVerdict> Apply(IEnumerable<UserVerdict> verdicts)
    {
        var filtered = Filter switch
        {
            "blocking" => verdicts.Where(v => v.Outcome == MigrationOutcome.Blocks),
            "left-out" => verdicts.Where(v => v.Outcome == MigrationOutcome.LeftOut),
            "migrated" => verdicts.Where(v => v.Outcome == MigrationOutcome.Migrated),
            _ => verdicts,
        };
        if (!string.IsNullOrWhiteSpace(Search))
        {
            filtered = filtered.Where(v => v.User.Email.Contains(Search.Trim(), StringComparison.OrdinalIgnoreCase));
        }

        IOrderedEnumerable<UserVerdict> Order<TKey>(Func<UserVerdict, TKey> key, IComparer<TKey>? comparer = null) =>
            Descending ? filtered.OrderByDescending(key, comparer) : filtered.OrderBy(key, comparer);

        return Sort switch
        {
            "email" => Order(v => v.User.Email, StringComparer.OrdinalIgnoreCase),
            "outcome" => Order(v => v.Outcome == MigrationOutcome.Blocks ? 0 : v.Outcome == MigrationOutcome.LeftOut ? 1 : 2).ThenBy(v => v.User.Id),
            "project_dir" => Order(v => v.User.ProjectDir ?? "", StringComparer.Ordinal).ThenBy(v => v.User.Id),
            _ => Order(v => v.User.Id),
        };
    }
}
