using System.Security.Claims;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Runbooks;

/// <summary>A page a product adds under each of its targets (Fractal: its users).</summary>
public sealed record ProductPage(string Title, string Icon, string PathTemplate, string ElementId)
{
    public string PathFor(int targetId) => PathTemplate.Replace("{id}", targetId.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
}

/// <summary>
/// What the plan page and API may choose besides the runbook. <paramref name="Chain"/>: a wanted version further than one
/// hop away is planned as a chain of runs (ADR 0028), its first hop now, instead of being refused.
/// </summary>
public sealed record PlanOptions(string? ToVersion, string? OAuthClient, bool DataMigration, bool Chain = false);

/// <summary>
/// A product the dashboard upgrades, plugged in once: its runbooks and its extra pages (this,
/// a singleton) and its services (<see cref="IProductRuntime"/>, per request). Everything about the
/// product lives in its own folder; the plan page, driver, rollback and API read its runbooks.
/// </summary>
public interface IProduct
{
    /// <summary>Names the product (the runbooks' <see cref="RunbookDefinition.Product"/>).</summary>
    string Id { get; }

    string Title { get; }

    IReadOnlyList<RunbookDefinition> Runbooks { get; }

    IReadOnlyList<ProductPage> TargetPages { get; }

    /// <summary>
    /// A component the plan page shows after the phases for this product's plans (its one parameter <c>Plan</c>, of type
    /// <see cref="Runs.Plan"/>), or null: what only this product has to say about a plan (Fractal: the env-file diff and
    /// the users; OMERO: the database, the SQL chain, the backup). The interactive plan page renders it through
    /// <see cref="ProductPlanSection"/>; the phases, backup, duration and preflight every plan shows are the page's own.
    /// </summary>
    Type? PlanSection => null;

    /// <summary>How the target form names the settings on the server for this product, and which it uses.</summary>
    TargetFieldWords TargetFields => TargetFieldWords.Fractal;

    /// <summary>
    /// A component the target page shows after "What runs there" for this product's targets (parameters <c>Target</c>,
    /// <c>Discovery</c> and <c>OnChanged</c>), or null: Backend.AI's hosts.
    /// </summary>
    Type? TargetSection => null;
}

/// <summary>
/// The target form's words for one product's settings on the server (the form is shared; each product
/// says what its settings mean and which ones it does not use, which the form then does not show).
/// </summary>
public sealed record TargetFieldWords
{
    public static TargetFieldWords Fractal { get; } = new();

    public string HostPlaceholder { get; init; } = "fractal.example.org";

    public string NamePlaceholder { get; init; } = "fractal-prod";

    public string WorkingDirectory { get; init; } = "Working directory";

    public string WorkingDirectoryPlaceholder { get; init; } = "/srv/fractal";

    public string PythonPath { get; init; } = "fractal-server's Python (optional; found from FRACTAL_SLURM_WORKER_PYTHON or fractalctl otherwise)";

    public string PythonPlaceholder { get; init; } = "/srv/fractal/venv/bin/python";

    /// <summary>The product has an env file, a server address and stop/start/status commands of the admin's choosing.</summary>
    public bool UsesEnvFileAndServiceCommands { get; init; } = true;

    /// <summary>
    /// The product's runbooks rehearse (ADR 0022), so a target may require a recent passing rehearsal before a run; a
    /// product that does not rehearse refuses the setting rather than keep a requirement its preflight never checks.
    /// </summary>
    public bool Rehearses { get; init; } = true;
}

/// <summary>A product's services for one request or one phase: discovery for the plan, preflight, a session on a target.</summary>
public interface IProductRuntime
{
    /// <summary>Connects to the target for a phase. Throws what a connection throws when the target cannot be reached.</summary>
    Task<IProductSession> OpenSessionAsync(Target target, CancellationToken ct);

    /// <summary>
    /// Runs every preflight check of the product on the target and stores the result. Inside a run
    /// (<paramref name="forRun"/>) a gathering that failed by a timeout or a dropped connection is tried
    /// again (bounded), each retry told to <paramref name="onRetry"/>.
    /// </summary>
    Task<PreflightRun> PreflightAsync(int targetId, ClaimsPrincipal actor, CancellationToken ct, int? forRun = null, Func<string, Task>? onRetry = null);

    Task<PreflightRun?> LatestPreflightAsync(int targetId, CancellationToken ct);

    /// <summary>
    /// What is there now and what the run will record (versions, facts for the phases' previews, the
    /// snapshot the phases read later); the plan builder adds the phases from the runbook.
    /// </summary>
    Task<Plan> DiscoverPlanAsync(Target target, RunbookDefinition runbook, PlanOptions options, CancellationToken ct);
}

/// <summary>
/// A product whose server is looked at its own way on the target page ("Look at the server"); without
/// it, fractal-server's discovery is used.
/// </summary>
public interface IProductDiscovery
{
    Task<Targets.DiscoveryRecord> DiscoverTargetAsync(Targets.Target target, Core.Remote.IRemoteShell shell, DateTimeOffset at, CancellationToken ct);
}

/// <summary>
/// A product whose target is many hosts (Backend.AI): "Look at the server" looks at every host through their own
/// connections instead of the target's one.
/// </summary>
public interface IClusterDiscovery
{
    Task<Targets.DiscoveryRecord> DiscoverClusterAsync(Targets.Target target, DateTimeOffset at, CancellationToken ct);
}

/// <summary>Every runbook of every product plugged in.</summary>
public sealed class RunbookCatalog(IEnumerable<IProduct> products)
{
    private readonly IReadOnlyList<IProduct> _products = products.ToList();

    public IReadOnlyList<IProduct> Products => _products;

    public IReadOnlyList<RunbookDefinition> All => [.. _products.SelectMany(p => p.Runbooks)];

    /// <summary>A runbook by id, or the rehearsal of one (<see cref="RehearsalRunbooks"/>).</summary>
    public RunbookDefinition? Find(string? id) =>
        _products.SelectMany(p => p.Runbooks).FirstOrDefault(r => r.Id == id)
        ?? (id is not null && id.EndsWith(RehearsalRunbooks.Suffix, StringComparison.Ordinal) && Find(id[..^RehearsalRunbooks.Suffix.Length]) is { } rehearsed ? RehearsalRunbooks.Of(rehearsed) : null);

    public IProduct? ProductOf(RunbookDefinition runbook) => _products.FirstOrDefault(p => p.Id == runbook.Product);

    /// <summary>The product a target runs (null if that product is no longer plugged in).</summary>
    public IProduct? ForTarget(Target target) => _products.FirstOrDefault(p => p.Id == target.Product);

    /// <summary>The runtime of the product behind a runbook.</summary>
    public static IProductRuntime Runtime(IServiceProvider services, RunbookDefinition runbook) =>
        services.GetRequiredKeyedService<IProductRuntime>(runbook.Product);

    public static IProductRuntime Runtime(IServiceProvider services, IProduct product) =>
        services.GetRequiredKeyedService<IProductRuntime>(product.Id);

    /// <summary>The runtime of the product a target runs; null if that product is no longer plugged in.</summary>
    public IProductRuntime? RuntimeFor(IServiceProvider services, Target target) =>
        ForTarget(target) is { } product ? Runtime(services, product) : null;

    /// <summary>The runbooks of the product a target runs.</summary>
    public IReadOnlyList<RunbookDefinition> RunbooksFor(Target target) => ForTarget(target)?.Runbooks ?? [];
}

public static class ProductsSetup
{
    /// <summary>Plugs a product in: its runbooks and pages, and its runtime for requests and phases.</summary>
    public static WebApplicationBuilder AddProduct<TRuntime>(this WebApplicationBuilder builder, IProduct product)
        where TRuntime : class, IProductRuntime
    {
        builder.Services.AddSingleton(product);
        builder.Services.AddKeyedScoped<IProductRuntime, TRuntime>(product.Id);
        return builder;
    }

    /// <summary>The catalog over every product; each product's own setup plugs it in (<see cref="AddProduct{TRuntime}"/>).</summary>
    public static WebApplicationBuilder AddRunbooks(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<RunbookCatalog>();
        builder.Services.AddScoped<TargetPreflights>();
        return builder;
    }
}
