using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Chains;

/// <summary>One hop of an upgrade chain as planned: the versions, its kind (minor, major) and the runbook that runs it.</summary>
public sealed record ChainHop(string From, string To, string Kind, string Runbook)
{
    public override string ToString() => $"{From} → {To} ({Kind})";
}

/// <summary>
/// What a run planned as a hop of a chain carries (ADR 0028): the chain, which hop it is, every hop as approved, and for
/// a hop after the first the run before it, the version the cluster must be on, and the approval carried from the first.
/// </summary>
public sealed record ChainLink(string ChainId, int Index, IReadOnlyList<ChainHop> Hops, int? PreviousRunId = null, string? ApprovedBy = null, DateTimeOffset? ApprovedAt = null)
{
    public ChainHop Hop => Hops[Index - 1];

    /// <summary>The first hop of a chain just planned.</summary>
    public static ChainLink First(IReadOnlyList<ChainHop> hops) => new(Guid.NewGuid().ToString("N"), 1, hops);
}

/// <summary>The rules of a chain of runs: what a run says of its chain, whether a next hop is due after it (both pure), and which run a hop is.</summary>
public static class RunChain
{
    /// <summary>The hops recorded on a run of a chain (empty for a run on its own).</summary>
    public static IReadOnlyList<ChainHop> Hops(Run run) =>
        run.ChainHopsJson is { } json ? JsonSerializer.Deserialize<List<ChainHop>>(json, JsonSerializerOptions.Web) ?? [] : [];

    /// <summary>Records the chain on a run about to be stored.</summary>
    public static void Link(Run run, ChainLink link)
    {
        run.ChainId = link.ChainId;
        run.ChainIndex = link.Index;
        run.ChainLength = link.Hops.Count;
        run.ChainTo = link.Hops[^1].To;
        run.ChainHopsJson = JsonSerializer.Serialize(link.Hops, JsonSerializerOptions.Web);
        run.ChainPreviousRunId = link.PreviousRunId;
    }

    /// <summary>The run of hop <paramref name="index"/> of chain <paramref name="chainId"/>, if it was created.</summary>
    public static Task<int?> RunOfHopAsync(IQueryable<Run> runs, string chainId, int index, CancellationToken ct) =>
        runs.AsNoTracking().Where(r => r.ChainId == chainId && r.ChainIndex == index).Select(r => (int?)r.Id).FirstOrDefaultAsync(ct);

    /// <summary>The run of the hop after <paramref name="run"/> (null for a run on its own, the last hop, or before the job created it).</summary>
    public static Task<int?> NextRunIdAsync(IQueryable<Run> runs, Run run, CancellationToken ct) =>
        run is { ChainId: { } chain, ChainIndex: { } index } ? RunOfHopAsync(runs, chain, index + 1, ct) : Task.FromResult<int?>(null);

    /// <summary>"hop 1 of 2 of the chain 23.09.9 → 24.03.0", or null for a run on its own.</summary>
    public static string? Describe(Run run) =>
        run.ChainId is null ? null : $"hop {run.ChainIndex} of {run.ChainLength} of the chain {Hops(run) switch { [var first, ..] => first.From, _ => "?" }} → {run.ChainTo}";

    /// <summary>
    /// The link of the hop after <paramref name="run"/>, when one is due: the run is a hop of a chain, it succeeded, and it
    /// is not the last hop, and the chain was not stopped after it. Null otherwise (a failed, cancelled or rolled-back hop
    /// stops the chain, and so does a stop reason recorded on it: a later delivery of its job does nothing).
    /// </summary>
    public static ChainLink? Next(Run run, string? approvedBy, DateTimeOffset? approvedAt)
    {
        if (run is not { ChainId: { } chain, ChainIndex: { } index, State: RunState.Succeeded, ChainStop: null })
        {
            return null;
        }

        var hops = Hops(run);
        return index < hops.Count ? new ChainLink(chain, index + 1, hops, run.Id, approvedBy, approvedAt) : null;
    }
}
