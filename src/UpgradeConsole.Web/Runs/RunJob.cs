using System.Globalization;
using Hangfire;
using Hangfire.States;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Runs;

/// <summary>How long a claim on a phase lasts without a heartbeat, and how often the heartbeat renews it.</summary>
public sealed class RunJobOptions
{
    public const string Section = "Runs";

    /// <summary>A node that stops renewing its claim (it died) loses the phase after this long.</summary>
    public TimeSpan PhaseLease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the node running a phase renews its claim; well under <see cref="PhaseLease"/>.</summary>
    public TimeSpan PhaseHeartbeat { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Whether this dashboard runs the recovery job (every 15 s and at start) that enqueues again the phase of a
    /// run nobody holds. Off, a dead node's phase comes back only through Hangfire's own redelivery (its
    /// invisibility timeout, <see cref="UpgradeConsole.Web.Jobs.JobsOptions.InvisibilityTimeout"/>): slower, but a
    /// test can watch that path alone.
    /// </summary>
    public bool Recovery { get; set; } = true;
}

/// <summary>
/// The Hangfire jobs that move runs. Each phase of a run is one job; the job of the next phase is
/// enqueued only after this phase's checkpoint is committed. Hangfire delivers a job at least once (a
/// storage outage, an invisibility timeout, a node's death), so a phase job first claims its phase with a
/// conditional update (node, lease, renewed by a heartbeat while it runs): a second delivery of a claimed
/// or finished phase does nothing and says so in the run's log. The run state machine in the dashboard's
/// database stays the source of truth; Hangfire is the queue.
/// </summary>
public sealed class RunJob(
    AppDbContext db,
    IRunPhaseDriver driver,
    IBackgroundJobClient jobs,
    JobStorage storage,
    DashboardNode node,
    IServiceScopeFactory scopes,
    IOptions<RunJobOptions> options,
    TimeProvider clock,
    ILogger<RunJob> logger,
    Runbooks.RunbookCatalog runbooks)
{
    /// <summary>The recurring job that puts runs whose phase nobody holds back into the queue.</summary>
    public const string RecoverJobId = "runs-recover";

    private static readonly HashSet<string> WaitingStates = new([EnqueuedState.StateName, ScheduledState.StateName, AwaitingState.StateName], StringComparer.OrdinalIgnoreCase);

    /// <summary>How long a chain's next-hop job may take to create the next run before the recovery enqueues it again.</summary>
    private static readonly TimeSpan ChainJobGrace = TimeSpan.FromMinutes(1);

    /// <summary>A hop that succeeded longer ago than this is left to people (the run page shows it as the chain's last run).</summary>
    private static readonly TimeSpan ChainJobRecoveryLimit = TimeSpan.FromDays(1);

    /// <summary>Asks Hangfire to move the run on from its checkpoint (after a start, retry, mark-done or rollback).</summary>
    public async Task ScheduleAsync(int runId, CancellationToken ct)
    {
        var run = await db.Runs.AsNoTracking().Include(r => r.Phases).FirstOrDefaultAsync(r => r.Id == runId, ct);
        if (run is null || !RunStateMachine.IsMoving(run.State))
        {
            return;
        }

        // No phase left (the last one was marked done): the job ends the run.
        await EnqueueAsync(runId, RunStateMachine.CurrentPhase(run, runbooks.Find(run.RunbookId))?.Index ?? -1, ct);
    }

    /// <summary>One phase of one run (or, with no phase left, the run's end).</summary>
    [AutomaticRetry(Attempts = 0)]
    [JobDisplayName("Run {0}, phase {1}")]
    public async Task RunPhaseAsync(int runId, int phaseIndex, CancellationToken ct)
    {
        var run = await db.Runs.AsNoTracking().Include(r => r.Phases).FirstOrDefaultAsync(r => r.Id == runId, ct);
        var phase = run?.Phases.FirstOrDefault(p => p.Index == phaseIndex);
        if (run is null || phase is null)
        {
            if (run is not null)
            {
                await ContinueAsync(await driver.ExecutePhaseAsync(runId, phaseIndex, ct), runId, ct);
            }

            return;
        }

        // Every line logged while the phase runs (driver, engine, SSH) carries the run, phase and target (JSON logs: IncludeScopes).
        using var logScope = logger.BeginScope(new Dictionary<string, object> { ["RunId"] = runId, ["Phase"] = phase.Key, ["TargetId"] = run.TargetId });
        if (!RunStateMachine.IsMoving(run.State) || RunStateMachine.CurrentPhase(run, runbooks.Find(run.RunbookId))?.Index != phaseIndex)
        {
            await SayAsync(runId, phase, $"── {phase.Title}: its job was delivered again, but the phase is {phase.State} and the run {run.State}; this delivery did nothing", ct);
            return;
        }

        var owner = node.Name;
        var now = clock.GetUtcNow().UtcDateTime;
        var until = now + options.Value.PhaseLease;
        var claimed = await db.RunPhases
            .Where(p => p.Id == phase.Id && (p.State == PhaseState.Pending || p.State == PhaseState.Running)
                && (p.LeaseExpiresAt == null || p.LeaseExpiresAt < now))
            .ExecuteUpdateAsync(s => s.SetProperty(p => p.LeaseOwner, owner).SetProperty(p => p.LeaseExpiresAt, until), ct);
        if (claimed == 0)
        {
            var holder = await db.RunPhases.AsNoTracking().Where(p => p.Id == phase.Id).Select(p => new { p.State, p.LeaseOwner, p.LeaseExpiresAt }).FirstAsync(ct);
            await SayAsync(runId, phase, holder.State is PhaseState.Pending or PhaseState.Running
                ? $"── {phase.Title}: its job was delivered again while node {holder.LeaseOwner} runs it (claimed until {Describe(holder.LeaseExpiresAt)} UTC); this delivery did nothing"
                : $"── {phase.Title}: its job was delivered again, but the phase is {holder.State}; this delivery did nothing", ct);
            return;
        }

        logger.LogInformation("Node {Node} claimed phase {Phase} of run {Run}", owner, phase.Key, runId);
        using var lost = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var stopHeartbeat = new CancellationTokenSource();
        var heartbeat = HeartbeatAsync(phase.Id, owner, lost, stopHeartbeat.Token);
        int? next;
        try
        {
            next = await driver.ExecutePhaseAsync(runId, phaseIndex, lost.Token);
        }
        catch (OperationCanceledException) when (lost.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            // Another node claimed the phase: this node was taken for dead. It leaves the phase to that node.
            logger.LogWarning("Node {Node} lost its claim on phase {Phase} of run {Run}; another node continues it", owner, phase.Key, runId);
            return;
        }
        finally
        {
            await stopHeartbeat.CancelAsync();
            await heartbeat;
            // Released at once (also when the dashboard stops): the next claim need not wait for the lease to run out.
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<AppDbContext>().RunPhases
                .Where(p => p.Id == phase.Id && p.LeaseOwner == owner)
                .ExecuteUpdateAsync(s => s.SetProperty(p => p.LeaseExpiresAt, (DateTime?)null), CancellationToken.None);
        }

        await ContinueAsync(next, runId, ct);
    }

    /// <summary>
    /// Runs whose current phase nobody holds (its node died, or died between a checkpoint and the next
    /// job) get that phase's job again; the claim makes a spare delivery harmless. Recurring, and at start.
    /// </summary>
    [AutomaticRetry(Attempts = 0)]
    [DisableConcurrentExecution(timeoutInSeconds: 60)]
    [JobDisplayName("Resume runs whose phase no node holds")]
    public async Task RecoverAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var runs = await db.Runs.AsNoTracking().Include(r => r.Phases)
            .Where(r => r.State == RunState.Running || r.State == RunState.RollingBack).ToListAsync(ct);
        using var connection = storage.GetConnection();
        foreach (var run in runs)
        {
            var phase = RunStateMachine.CurrentPhase(run, runbooks.Find(run.RunbookId));
            if (phase is not null && phase.LeaseExpiresAt > now)
            {
                continue;
            }

            // A job still waiting in the queue will come; one a dead node was processing will not.
            var waiting = phase?.JobId is { } jobId && connection.GetStateData(jobId)?.Name is { } state && WaitingStates.Contains(state);
            if (waiting)
            {
                continue;
            }

            logger.LogWarning("Run {Run} is {State} at phase {Phase} and no node holds it (last {Owner}); enqueuing its job again",
                run.Id, run.State, phase?.Key ?? "(end)", phase?.LeaseOwner ?? "none");
            await EnqueueAsync(run.Id, phase?.Index ?? -1, ct);
        }

        // A scheduled start whose job is gone (deleted under /jobs, storage lost) is due all the same; a spare one does nothing.
        var scheduled = await db.Runs.AsNoTracking().Where(r => r.State == RunState.Planned && r.ScheduledAt != null)
            .Select(r => new { r.Id, r.ScheduledAt, r.ScheduleJobId }).ToListAsync(ct);
        foreach (var run in scheduled.Where(r => r.ScheduledAt < clock.GetUtcNow() - TimeSpan.FromMinutes(1)))
        {
            var state = run.ScheduleJobId is { } jobId ? connection.GetStateData(jobId)?.Name : null;
            if (state is not null && (WaitingStates.Contains(state) || string.Equals(state, ProcessingState.StateName, StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }

            logger.LogWarning("Run {Run} was scheduled to start at {At} and its job is gone ({State}); enqueuing its start", run.Id, run.ScheduledAt, state ?? "none");
            var due = run.ScheduledAt!.Value.ToUnixTimeMilliseconds();
            var started = jobs.Enqueue<ScheduledStartJob>(j => j.StartAsync(run.Id, due, CancellationToken.None));
            await db.Runs.Where(r => r.Id == run.Id).ExecuteUpdateAsync(s => s.SetProperty(r => r.ScheduleJobId, started), ct);
        }

        await RecoverChainsAsync(ct);
    }

    /// <summary>
    /// A hop of a chain that succeeded a while ago with neither a next run nor a reason the chain stopped: its next-hop job
    /// was lost (the node died between committing the success and enqueuing it, or the job was deleted under /jobs).
    /// Enqueued again; the job creates nothing when the next hop's run exists already (ADR 0028).
    /// </summary>
    private async Task RecoverChainsAsync(CancellationToken ct)
    {
        var hops = await db.Runs.AsNoTracking()
            .Where(r => r.State == RunState.Succeeded && r.ChainId != null && r.ChainIndex < r.ChainLength && r.ChainStop == null)
            .Select(r => new { r.Id, r.ChainId, r.ChainIndex, r.EndedAt }).ToListAsync(ct);
        // Compared here, not in SQL (SQLite cannot compare DateTimeOffset values); the grace gives the job enqueued with the success its time.
        var now = clock.GetUtcNow();
        foreach (var hop in hops.Where(h => h.EndedAt < now - ChainJobGrace && h.EndedAt > now - ChainJobRecoveryLimit))
        {
            if (await Chains.RunChain.RunOfHopAsync(db.Runs, hop.ChainId!, hop.ChainIndex!.Value + 1, ct) is not null)
            {
                continue;
            }

            logger.LogWarning("Run {Run} is hop {Hop} of chain {Chain}, succeeded at {At}, and the next hop has neither a run nor a stop reason; enqueuing its job again",
                hop.Id, hop.ChainIndex, hop.ChainId, hop.EndedAt);
            jobs.Enqueue<Chains.ChainJob>(j => j.NextHopAsync(hop.Id, CancellationToken.None));
        }
    }

    private async Task ContinueAsync(int? next, int runId, CancellationToken ct)
    {
        if (next is { } index)
        {
            // The checkpoint of the phase before is committed (the driver saved it): only now the next job.
            await EnqueueAsync(runId, index, ct);
        }
    }

    private async Task EnqueueAsync(int runId, int phaseIndex, CancellationToken ct)
    {
        var jobId = jobs.Enqueue<RunJob>(j => j.RunPhaseAsync(runId, phaseIndex, CancellationToken.None));
        await db.RunPhases.Where(p => p.RunId == runId && p.Index == phaseIndex)
            .ExecuteUpdateAsync(s => s.SetProperty(p => p.JobId, jobId), ct);
    }

    /// <summary>Renews the claim until stopped; a renewal that finds the claim gone cancels the phase.</summary>
    private async Task HeartbeatAsync(int phaseId, string owner, CancellationTokenSource lost, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(options.Value.PhaseHeartbeat, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                try
                {
                    await using var scope = scopes.CreateAsyncScope();
                    var until = clock.GetUtcNow().UtcDateTime + options.Value.PhaseLease;
                    var renewed = await scope.ServiceProvider.GetRequiredService<AppDbContext>().RunPhases
                        .Where(p => p.Id == phaseId && p.LeaseOwner == owner && p.LeaseExpiresAt != null)
                        .ExecuteUpdateAsync(s => s.SetProperty(p => p.LeaseExpiresAt, until), stop);
                    if (renewed == 0)
                    {
                        await lost.CancelAsync();
                        return;
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The database is away for a moment: nobody else can claim meanwhile either; try again.
                    logger.LogWarning(ex, "Renewing the claim on phase {Phase} failed", phaseId);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The phase ended.
        }
    }

    /// <summary>A line in the run's log from the dashboard itself (the log writer numbers it after any line stored meanwhile).</summary>
    private async Task SayAsync(int runId, RunPhase phase, string line, CancellationToken ct)
    {
        logger.LogInformation("Run {Run}: {Line}", runId, line);
        var log = new RunLogWriter(scopes, runId, [], clock);
        await log.WriteAsync(phase, line, ct: ct);
        await log.FlushAsync(ct);
    }

    private static string Describe(DateTime? at) => at?.ToString("HH:mm:ss", CultureInfo.InvariantCulture) ?? "";
}
