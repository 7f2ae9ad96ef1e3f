using Hangfire;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Chains;

/// <summary>
/// The next hop of a chain of runs (ADR 0028), once the hop before it succeeded: planned afresh (the cluster looked at
/// again, the hop checked against the releases read again), recorded with the approval of the chain's first hop, and
/// started as the person who started the chain, whose role is checked again now. Enqueued after the success is
/// committed; delivered at least once, so the chain's unique (chain, hop) index makes a second delivery create nothing.
/// </summary>
public sealed class ChainJob(AppDbContext db, RunService runs, UserManager<AppUser> users, IUserClaimsPrincipalFactory<AppUser> principals, AuditLog audit, ILogger<ChainJob> logger)
{
    /// <summary>Enqueues the next hop's job after <paramref name="run"/>'s success was committed, when the run is a hop of a chain with hops left.</summary>
    public static void EnqueueAfter(IBackgroundJobClient jobs, Run run)
    {
        if (run is { State: RunState.Succeeded, ChainId: not null } && run.ChainIndex < run.ChainLength)
        {
            jobs.Enqueue<ChainJob>(j => j.NextHopAsync(run.Id, CancellationToken.None));
        }
    }

    [AutomaticRetry(Attempts = 0)]
    [JobDisplayName("Plan and start the next hop of the chain after run {0}")]
    public async Task NextHopAsync(int previousRunId, CancellationToken ct)
    {
        var previous = await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == previousRunId, ct);
        var first = previous?.ChainId is { } chainId ? await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.ChainId == chainId && r.ChainIndex == 1, ct) : null;
        if (previous is null || first is null || RunChain.Next(previous, first.ApprovedBy, first.ApprovedAt) is not { } link)
        {
            logger.LogInformation("Run {Run}: no next hop is due (not a hop of a chain, not succeeded, the last hop, or the chain stopped).", previousRunId);
            return;
        }

        if (await NextRunAsync(link, ct) is { } existing)
        {
            logger.LogInformation("Run {Run}: hop {Hop} of its chain is run {Next} already; this delivery does nothing.", previousRunId, link.Index, existing);
            return;
        }

        var starter = previous.StartedBy ?? "";
        var user = await users.FindByNameAsync(starter) ?? await users.FindByEmailAsync(starter);
        if (user is null || user.IsDisabled)
        {
            await StopAsync(previous, link, $"{starter} started the chain and may no longer start runs (disabled or unknown); plan hop {link.Index} ({link.Hop}) by hand.", ct);
            return;
        }

        var actor = await principals.CreateAsync(user);
        RunResult planned;
        try
        {
            planned = await runs.PlanAsync(previous.TargetId, link.Hop.Runbook, link.Hop.To, null, new Dictionary<string, string>(), actor, ct, link: link);
        }
        catch (AccessDeniedException ex)
        {
            planned = RunResult.Fail($"{starter} started the chain and may no longer plan runs: {ex.Message}");
        }

        if (!planned.Succeeded)
        {
            // A concurrent delivery that got there first made the plan fail (the target's one active run, the chain's unique hop).
            if (await NextRunAsync(link, ct) is null)
            {
                await StopAsync(previous, link, $"Hop {link.Index} of the chain ({link.Hop}) could not be planned: {planned.Error}", ct);
            }

            return;
        }

        var next = planned.RunId!.Value;
        await audit.RecordAsync("system", "run.chain-next", previous.TargetId, $"run {next}",
            new { run = next, previous = previous.Id, chain = link.ChainId, hop = link.Index, hops = link.Hops.Count, from = link.Hop.From, to = link.Hop.To, runbook = link.Hop.Runbook, startedBy = starter }, ct);
        if (link.ApprovedBy is not null)
        {
            await audit.RecordAsync("system", "run.chain-approval-carried", previous.TargetId, $"run {next}",
                new { run = next, chain = link.ChainId, approvedBy = link.ApprovedBy, approvedAt = link.ApprovedAt, approvedRun = first.Id }, ct);
        }

        var started = await runs.StartAsync(next, actor, ct);
        if (!started.Succeeded)
        {
            var stopped = await db.Runs.AsNoTracking().FirstAsync(r => r.Id == next, ct);
            await StopAsync(stopped, link, $"Hop {link.Index} of the chain was planned as this run but not started: {started.Error} Start it by hand, or abandon it.", ct);
        }
    }

    private Task<int?> NextRunAsync(ChainLink link, CancellationToken ct) => RunChain.RunOfHopAsync(db.Runs, link.ChainId, link.Index, ct);

    /// <summary>The chain stops at <paramref name="run"/>: the reason is kept on it (the run page shows it) and audited.</summary>
    private async Task StopAsync(Run run, ChainLink link, string reason, CancellationToken ct)
    {
        await db.Runs.Where(r => r.Id == run.Id).ExecuteUpdateAsync(u => u.SetProperty(r => r.ChainStop, reason), ct);
        await audit.RecordAsync("system", "run.chain-stop", run.TargetId, $"run {run.Id}", new { run = run.Id, chain = link.ChainId, hop = link.Index, reason }, ct);
        logger.LogWarning("The chain {Chain} stops at run {Run}: {Reason}", link.ChainId, run.Id, reason);
    }
}
