using System.Security.Claims;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Runbooks;

/// <summary>Checks of one kind (the part of their id before the first dot), in the order the product gave them.</summary>
public sealed record CheckGroup(string Key, string Title, IReadOnlyList<CheckResult> Checks)
{
    public CheckStatus Worst => Checks.Count == 0 ? CheckStatus.Pass : Checks.Max(c => c.Status);
}

/// <summary>What the preflight page shows: the target, whether its product has a preflight, the latest one grouped.</summary>
public sealed record PreflightView(Target Target, bool HasProduct, PreflightRun? Latest, IReadOnlyList<CheckGroup> Groups);

/// <summary>
/// A target's preflight through its product's runtime, for the preflight page: whatever the product, the page asks
/// here. Reading needs any role held now, running one Operator, both judged in the database (<see cref="UserAccess"/>).
/// </summary>
public sealed class TargetPreflights(TargetService targets, RunbookCatalog catalog, IServiceProvider services, UserAccess access)
{
    public async Task<PreflightView?> LatestAsync(int targetId, ClaimsPrincipal actor, CancellationToken ct = default)
    {
        if (await targets.FindAsync(targetId, actor, ct) is not { } target)
        {
            return null;
        }

        var product = catalog.ForTarget(target);
        var latest = product is null ? null : await RunbookCatalog.Runtime(services, product).LatestPreflightAsync(targetId, ct);
        return new PreflightView(target, product is not null, latest, latest is null ? [] : Group(PreflightService.Checks(latest)));
    }

    public async Task<PreflightRun> RunAsync(int targetId, ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Operator);
        var target = await targets.FindAsync(targetId, ct) ?? throw new InvalidOperationException("No such target.");
        var product = catalog.ForTarget(target) ?? throw new InvalidOperationException($"The product {target.Product} is not plugged in.");
        return await RunbookCatalog.Runtime(services, product).PreflightAsync(targetId, actor, ct);
    }

    /// <summary>The checks grouped by the part of their id before the first dot, groups in the order they first appear.</summary>
    public static IReadOnlyList<CheckGroup> Group(IReadOnlyList<CheckResult> checks) =>
        checks.GroupBy(c => c.Id.Split('.', 2)[0], StringComparer.Ordinal)
            .Select(g => new CheckGroup(g.Key, TitleOf(g.Key), [.. g]))
            .ToList();

    private static string TitleOf(string key) => key switch
    {
        "target" => "Connection",
        "version" => "Installed version",
        "db" => "Database",
        "users" => "Users",
        "env" => "Configuration (env file)",
        "backup" => "Backup",
        "service" => "Service",
        "runs" => "Other runs",
        "" => "Other",
        _ => char.ToUpperInvariant(key[0]) + key[1..],
    };
}
