using UpgradeConsole.Core.Fractal;

namespace UpgradeConsole.Web.Fractal;

/// <summary>Filter, search, sort and page of the users table, as they travel in the address and in htmx posts.</summary>
public sealed record UsersQuery(string Filter = "all", string? Search = null, string Sort = "id", int Page = 1)
{
    public const int PageSize = 50;

    public static UsersQuery From(IQueryCollection query) => new(
        query["filter"].FirstOrDefault() is { Length: > 0 } f ? f : "all",
        query["q"].FirstOrDefault(),
        query["sort"].FirstOrDefault() is { Length: > 0 } s ? s : "id",
        int.TryParse(query["page"].FirstOrDefault(), out var p) && p > 0 ? p : 1);

    public static UsersQuery From(IFormCollection form) => new(
        form["filter"].FirstOrDefault() is { Length: > 0 } f ? f : "all",
        form["q"].FirstOrDefault(),
        form["sort"].FirstOrDefault() is { Length: > 0 } s ? s : "id",
        int.TryParse(form["page"].FirstOrDefault(), out var p) && p > 0 ? p : 1);

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

        return Sort switch
        {
            "email" => filtered.OrderBy(v => v.User.Email, StringComparer.OrdinalIgnoreCase),
            "outcome" => filtered.OrderBy(v => v.Outcome == MigrationOutcome.Blocks ? 0 : v.Outcome == MigrationOutcome.LeftOut ? 1 : 2).ThenBy(v => v.User.Id),
            "project_dir" => filtered.OrderBy(v => v.User.ProjectDir ?? "", StringComparer.Ordinal),
            _ => filtered.OrderBy(v => v.User.Id),
        };
    }

    public string Link(int targetId, string? filter = null, string? sort = null, int? page = null) =>
        $"/targets/{targetId}/users?filter={Uri.EscapeDataString(filter ?? Filter)}&sort={Uri.EscapeDataString(sort ?? Sort)}&page={page ?? Page}" +
        (string.IsNullOrWhiteSpace(Search) ? "" : "&q=" + Uri.EscapeDataString(Search));
}
