using UpgradeConsole.Core.EnvFiles;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Runs;

/// <summary>A phase as planned, with the exact commands it runs (secrets masked); an optional phase not chosen is recorded as skipped.</summary>
public sealed record PlannedPhase(PhaseDefinition Definition, string? Commands, bool Chosen = true);

/// <summary>Everything a person reads before starting a run.</summary>
public sealed record Plan
{
    public string? Error { get; init; }

    public Target? Target { get; init; }

    public RunbookDefinition? Runbook { get; init; }

    public string? FromVersion { get; init; }

    public string ToVersion { get; init; } = "";

    public IReadOnlyList<PlannedPhase> Phases { get; init; } = [];

    /// <summary>What the product found for its phases' previews (the product's own type).</summary>
    public object? Facts { get; init; }

    public EnvMigration? EnvMigration { get; init; }

    public string? EnvDiff { get; init; }

    public IReadOnlyList<UserVerdict> Users { get; init; } = [];

    public long? DatabaseSize { get; init; }

    public string BackupDirectory { get; init; } = "";

    public TimeSpan? ExpectedDuration { get; init; }

    /// <summary>The latest rehearsal of this runbook on the target (when, which dump, outcome, duration), if any.</summary>
    public Rehearsals.RehearsalSummary? LatestRehearsal { get; init; }

    public PreflightRun? Preflight { get; init; }

    /// <summary>What the run records for its phases to read later (the product's own type; no secrets).</summary>
    public object Snapshot { get; init; } = new();

    /// <summary>Every hop of the chain this plan is the first hop of (ADR 0028); empty for a run on its own.</summary>
    public IReadOnlyList<Chains.ChainHop> Chain { get; init; } = [];
}

/// <summary>Builds the plan of a runbook on a target: the product says what is there, each phase shows its own commands.</summary>
public sealed class PlanBuilder(TargetService targets, RunbookCatalog runbooks, IServiceProvider services, Persistence.AppDbContext db)
{
    public async Task<Plan> BuildAsync(int targetId, string runbookId, string? toVersion, string? oauthClient, CancellationToken ct, bool dataMigration = false, bool chain = false)
    {
        var target = await targets.FindAsync(targetId, ct);
        // No runbook named: the first of the target's product.
        var runbook = string.IsNullOrEmpty(runbookId) && target is not null ? (runbooks.RunbooksFor(target) is [var first, ..] ? first : null) : runbooks.Find(runbookId);
        if (target is null || runbook is null || runbook.IsRehearsal)
        {
            return new Plan { Error = "No such target or runbook." };
        }

        if (runbook.Product != target.Product)
        {
            return new Plan
            {
                Error = $"{runbook.Title} is a runbook of {runbooks.ProductOf(runbook)?.Title ?? runbook.Product}; {target.Name} runs {runbooks.ForTarget(target)?.Title ?? target.Product}. " +
                    $"Its runbooks: {string.Join(", ", runbooks.RunbooksFor(target).Select(r => r.Id))}.",
                Target = target,
            };
        }

        var product = RunbookCatalog.Runtime(services, runbook);
        var found = await product.DiscoverPlanAsync(target, runbook, new PlanOptions(toVersion, oauthClient, dataMigration, chain), ct);
        if (found.Error is not null)
        {
            return found;
        }

        var inputs = new PlanInputs(target, found.FromVersion, found.ToVersion, found.Facts ?? new object());
        return found with
        {
            Phases = runbook.Phases.Select(p => new PlannedPhase(p, p.Preview(inputs), Chosen: !p.Optional || dataMigration)).ToList(),
            ExpectedDuration = await ExpectedDurationAsync(runbook.Id, ct, targetId),
            Preflight = await product.LatestPreflightAsync(targetId, ct),
            LatestRehearsal = await Rehearsals.RehearsalService.LatestAsync(db, runbooks, targetId, runbook.Id, passedOnly: false, ct),
        };
    }

    /// <summary>
    /// Average duration of earlier successful runs of this runbook, for the plan's estimate. With a target whose latest
    /// passing rehearsal measured some phases on its own data, those phases count with the rehearsal's durations
    /// instead of their history's (the history's average of each such phase is taken out, the measured one put in).
    /// </summary>
    public async Task<TimeSpan?> ExpectedDurationAsync(string runbookId, CancellationToken ct, int? targetId = null)
    {
        var earlier = await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.ToListAsync(
            db.Runs.Where(r => r.RunbookId == runbookId && r.State == RunState.Succeeded && r.StartedAt != null && r.EndedAt != null)
                .Select(r => new { r.Id, r.StartedAt, r.EndedAt }), ct);
        TimeSpan? average = earlier.Count == 0 ? null : TimeSpan.FromSeconds(earlier.Average(r => (r.EndedAt!.Value - r.StartedAt!.Value).TotalSeconds));
        if (targetId is not { } target || runbooks.Find(runbookId) is not { } runbook)
        {
            return average;
        }

        var measured = Rehearsals.RehearsalService.Measured(await Rehearsals.RehearsalService.LatestAsync(db, runbooks, target, runbookId, passedOnly: true, ct), runbook);
        if (measured.Count == 0)
        {
            return average;
        }

        var ids = earlier.Select(r => r.Id).ToList();
        var keys = measured.Keys.ToList();
        var history = await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.ToListAsync(
            db.RunPhases.Where(p => ids.Contains(p.RunId) && keys.Contains(p.Key) && !p.IsRollback && p.StartedAt != null && p.EndedAt != null)
                .Select(p => new { p.Key, p.StartedAt, p.EndedAt }), ct);
        var total = average ?? TimeSpan.Zero;
        foreach (var (key, duration) in measured)
        {
            var past = history.Where(h => h.Key == key).Select(h => (h.EndedAt!.Value - h.StartedAt!.Value).TotalSeconds).ToList();
            total += duration - (average is null || past.Count == 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(past.Average()));
        }

        return total;
    }
}
