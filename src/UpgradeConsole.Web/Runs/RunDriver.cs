using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runbooks;

namespace UpgradeConsole.Web.Runs;

/// <summary>What a phase ended with.</summary>
public sealed record PhaseOutcome(PhaseState State, string? Message = null, int? ExitCode = null)
{
    /// <summary>What the phase learned or changed (a dump's size and checksum, an env file's diff), for its audit event.</summary>
    public object? Facts { get; init; }

    public static PhaseOutcome Done(string? message = null) => new(PhaseState.Succeeded, message);

    public static PhaseOutcome Failed(string message, int? exitCode = null) => new(PhaseState.Failed, message, exitCode);
}

/// <summary>What runs one claimed phase of a run for <see cref="RunJob"/>: <see cref="RunDriver"/>; the Hangfire benchmark puts no-op phases in its place.</summary>
public interface IRunPhaseDriver
{
    /// <summary>Runs the phase if the run is still at it; returns the index of the phase whose job comes next, or null.</summary>
    Task<int?> ExecutePhaseAsync(int runId, int phaseIndex, CancellationToken ct);
}

/// <summary>
/// Runs one phase of a run from its checkpoint (<see cref="RunJob"/> claims it first): the phase is marked
/// running before it starts and finished after, in the database. After a restart it continues where the
/// checkpoint says, reattaching to a remote step still running; a non-idempotent step whose outcome cannot
/// be known stops the run as NeedsAttention instead of running again.
/// </summary>
public sealed class RunDriver(
    AppDbContext db,
    IServiceScopeFactory scopes,
    IServiceProvider services,
    RunbookCatalog runbooks,
    AuditLog audit,
    TimeProvider clock,
    Hangfire.IBackgroundJobClient jobs,
    ILogger<RunDriver> logger) : IRunPhaseDriver
{
    /// <summary>
    /// The phase the run is at: the first of its direction (the runbook's, or the rollback's while rolling
    /// back) not yet done; null when every one is.
    /// </summary>
    public static RunPhase? CurrentPhase(Run run) => RunStateMachine.CurrentPhase(run);

    /// <summary>
    /// Runs phase <paramref name="phaseIndex"/> of the run if the run is still at it, and commits its
    /// checkpoint. Returns the index of the phase to run next (its job is the caller's to enqueue), or null
    /// when the run ended, stopped for a decision, waits for its checklist, or moved on meanwhile.
    /// </summary>
    public async Task<int?> ExecutePhaseAsync(int runId, int phaseIndex, CancellationToken ct)
    {
        var run = await db.Runs.Include(r => r.Phases).FirstOrDefaultAsync(r => r.Id == runId, ct);
        if (run is null || !RunStateMachine.IsMoving(run.State))
        {
            return null;
        }

        var runbook = runbooks.Find(run.RunbookId) ?? throw new InvalidOperationException($"Unknown runbook {run.RunbookId}.");
        var rollingBack = run.State == RunState.RollingBack;
        var phase = RunStateMachine.CurrentPhase(run, runbook);
        if (phase is { State: PhaseState.Failed or PhaseState.NeedsAttention })
        {
            // The phase's result was committed but the run's was not (the node died in between): finish that.
            await FinishRunAsync(run, RunStateMachine.AfterStoppedPhase(rollingBack, phase.State), $"{phase.Title}: {phase.Message}", ct, stayActive: !runbook.IsRehearsal);
            return null;
        }

        if (phase is not null && await StoppedAtGateAsync(run, runbook, phase, ct))
        {
            return null;
        }

        if (phase is null || IsManual(runbook, phase))
        {
            return await AdvanceAsync(run, phase, ct);
        }

        if (phase.Index != phaseIndex)
        {
            // An operator's action moved the run meanwhile; the job for its current phase is on its way.
            return null;
        }

        var target = await db.Targets.AsNoTracking().FirstAsync(t => t.Id == run.TargetId, ct);
        if (await ClosedAtPointOfNoReturnAsync(run, runbook, phase, target, ct))
        {
            return null;
        }

        var product = RunbookCatalog.Runtime(services, runbook);
        IProductSession session;
        try
        {
            session = await product.OpenSessionAsync(target, ct);
        }
        catch (Exception ex) when (ex is SshConnectionException or HostKeyNotPinnedException or InvalidOperationException or TimeoutException)
        {
            // Not reachable: leave the checkpoint as it is; an operator retries when the target is back.
            if (runbook.IsRehearsal && run.Phases.Any(p => p.StartedAt is not null) && run.Phases.FirstOrDefault(p => !p.IsRollback && p.State is PhaseState.Pending && runbook.Phase(p.Key) is { Finally: true }) is { } left)
            {
                // A rehearsal is not resumed: what it made on the target is recorded as left there, for the recurring cleanup.
                left.Message = Rehearsals.RehearsalLeftovers.LeftMessage;
            }

            await FinishRunAsync(run, rollingBack ? RunState.RollbackFailed : RunState.Failed, "The target cannot be reached: " + ex.Message, ct);
            return null;
        }

        // What the product opened for the phase (Fractal: a forward to the target's database) closes when it is done.
        await using var _ = session;
        var log = new RunLogWriter(scopes, run.Id, session.Secrets, clock);
        var execution = runbook.ExecutionOf(phase);
        var recovering = phase.State == PhaseState.Running;
        var attempt = recovering && execution is { Execution: BuiltinExecution }
            ? await StoredAttemptAsync(run.Id, phase, ct)
            : (Lines: (IReadOnlyList<string>)[], StartedAt: recovering ? null : (DateTimeOffset?)clock.GetUtcNow());

        // The header and the running state in one transaction: a phase never runs without its header stored,
        // and a header never stands in the log of a phase still pending (which would write it again).
        await log.WriteAndCommitAsync(phase, recovering ? $"── {phase.Title}: continuing after an interruption" : $"── {phase.Title}", new PhaseChange(PhaseState.Running), ct);
        phase.State = PhaseState.Running;
        phase.StartedAt ??= clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
        CrashPoints.Reached("started:" + phase.Key);

        // A builtin phase taken over after an interruption does its work again; what it already said is not said twice.
        log.Replay(attempt.Lines);

        PhaseOutcome outcome;
        try
        {
            var context = new PhaseContext(run, phase, runbook, target, session, product, new RemoteStepEngine(session.Shell, logger: logger), log, db, recovering, ct)
            {
                AttemptStartedAt = attempt.StartedAt,
                Clock = clock,
            };
            outcome = execution is { } e
                ? await PhaseRunner.RunAsync(context, e.Execution, e.Timeout, e.Idempotent)
                : PhaseOutcome.Failed($"No implementation for phase {phase.Key}.");
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The dashboard is stopping (or lost its claim): the checkpoint stays "running" and the next claim reattaches.
            await log.FlushAsync(CancellationToken.None);
            await db.SaveChangesAsync(CancellationToken.None);
            throw;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogError(ex, "Phase {Phase} of run {Run} failed", phase.Key, run.Id);
            outcome = execution is { Idempotent: false }
                ? new PhaseOutcome(PhaseState.NeedsAttention, $"{ex.Message} The outcome of this step is unknown and it is never re-run automatically: check the target, then retry, mark it done or roll back.")
                : PhaseOutcome.Failed(ex.Message);
        }

        // The audit event first (once, even when an interrupted end is redone), then the end line with the
        // phase's result in one transaction: a kill in between redoes the end, never loses it.
        var message = outcome.Message is null ? null : log.Masked(outcome.Message);
        await RecordPhaseAsync(run, phase, outcome.State, message, outcome.Facts, recovering, ct);
        await log.WriteAndCommitAsync(phase, outcome.State == PhaseState.Succeeded ? $"── {phase.Title}: done{(outcome.Message is null ? "" : " · " + outcome.Message)}" : $"── {phase.Title}: {outcome.State}: {outcome.Message}",
            new PhaseChange(outcome.State, Final: true, message, outcome.ExitCode), ct);
        phase.State = outcome.State;
        phase.Message = message;
        phase.ExitCode = outcome.ExitCode;
        phase.EndedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
        services.GetService<Metrics.DashboardMetrics>()?.PhaseEnded(run.RunbookId, phase.Key, phase.State.ToString(), phase.EndedAt.Value - (phase.StartedAt ?? phase.EndedAt.Value));
        if (outcome.State != PhaseState.Succeeded && !rollingBack && RunStateMachine.FinallyAfter(run, runbook, phase) is { } cleanup)
        {
            // A phase that runs also after a failure (a rehearsal's cleanup) comes next; what lies between is not run.
            foreach (var skipped in run.Phases.Where(p => !p.IsRollback && p.Index > phase.Index && p.Index < cleanup.Index && p.State == PhaseState.Pending))
            {
                skipped.State = PhaseState.Skipped;
                skipped.Message = "Not run: an earlier phase failed.";
            }

            run.Message = $"{phase.Title}: {phase.Message}";
            run.Version = Guid.NewGuid();
            await db.SaveChangesAsync(ct);
            return cleanup.Index;
        }

        var next = RunStateMachine.CurrentPhase(run, runbook);
        if (outcome.State != PhaseState.Succeeded || next is { State: PhaseState.Failed or PhaseState.NeedsAttention })
        {
            // This phase stopped the run, or it was the last that runs after the phase that did.
            var stopped = outcome.State != PhaseState.Succeeded ? phase : next!;
            await FinishRunAsync(run, RunStateMachine.AfterStoppedPhase(rollingBack, stopped.State), $"{stopped.Title}: {stopped.Message}", ct, stayActive: !runbook.IsRehearsal);
            return null;
        }

        if (next is not null && await StoppedAtGateAsync(run, runbook, next, ct))
        {
            return null;
        }

        return next is not null && !IsManual(runbook, next)
            ? next.Index
            : await AdvanceAsync(run, next, ct);
    }

    /// <summary>
    /// The phase's audit event, with what it learned or changed. A phase whose end was interrupted after its
    /// event was recorded (and before its result was stored) does not record the same event twice.
    /// </summary>
    private async Task RecordPhaseAsync(Run run, RunPhase phase, PhaseState state, string? message, object? facts, bool recovering, CancellationToken ct)
    {
        var subject = $"run {run.Id}";
        var details = new { run = run.Id, phase = phase.Key, phase.Attempt, state = state.ToString(), message, rollback = phase.IsRollback, facts };
        if (recovering)
        {
            var prefix = $"{{\"run\":{run.Id},\"phase\":{System.Text.Json.JsonSerializer.Serialize(phase.Key)},\"attempt\":{phase.Attempt},\"state\":\"{state}\",";
            if (await db.AuditEvents.AsNoTracking().AnyAsync(e => e.Action == "run.phase" && e.Subject == subject && e.Details.StartsWith(prefix), ct))
            {
                return;
            }
        }

        await audit.RecordAsync("system", "run.phase", run.TargetId, subject, details, ct);
    }

    /// <summary>
    /// The lines the current attempt of a phase stored so far (after its last header, without the lines
    /// about interruptions and spare deliveries) and when that header was stored.
    /// </summary>
    private async Task<(IReadOnlyList<string> Lines, DateTimeOffset? StartedAt)> StoredAttemptAsync(int runId, RunPhase phase, CancellationToken ct)
    {
        var chunks = await db.RunLogChunks.AsNoTracking().Where(c => c.RunId == runId && c.PhaseIndex == phase.Index)
            .OrderBy(c => c.FirstSequence).Select(c => new { c.At, c.Text }).ToListAsync(ct);
        var header = $"── {phase.Title}";
        var lines = new List<string>();
        DateTimeOffset? startedAt = null;
        foreach (var chunk in chunks)
        {
            foreach (var line in chunk.Text.Split('\n'))
            {
                if (line == header)
                {
                    lines.Clear();
                    startedAt = chunk.At;
                }
                else if (!line.StartsWith(header + ": continuing after an interruption", StringComparison.Ordinal)
                    && !line.StartsWith(header + ": its job was delivered again", StringComparison.Ordinal))
                {
                    lines.Add(line);
                }
            }
        }

        return (lines, startedAt);
    }

    /// <summary>
    /// Whatever let the run get here (a gate marked done before this rule, a hand-edited row), nothing
    /// after the preflight runs until the preflight itself passes: the gate fails and the run waits.
    /// </summary>
    private async Task<bool> StoppedAtGateAsync(Run run, RunbookDefinition runbook, RunPhase phase, CancellationToken ct)
    {
        if (PreflightGate.UnpassedGateBefore(run, runbook, phase) is not { } gate)
        {
            return false;
        }

        gate.State = PhaseState.Failed;
        gate.Message = $"The preflight has not passed, so {phase.Title} does not run. {PreflightGate.MarkDoneRefusal}";
        var log = new RunLogWriter(scopes, run.Id, [], clock);
        await log.WriteAsync(gate, "── " + gate.Message, ct: ct);
        await log.FlushAsync(ct);
        await audit.RecordAsync("system", "run.phase", run.TargetId, $"run {run.Id}", new { run = run.Id, phase = gate.Key, gate.Attempt, state = gate.State.ToString(), message = gate.Message, rollback = false }, ct);
        await FinishRunAsync(run, RunState.Failed, $"{gate.Title}: {gate.Message}", ct, stayActive: true);
        return true;
    }

    /// <summary>
    /// The point of no return is crossed only inside one of the target's maintenance windows: when none is open,
    /// its phase does not start, fails with the reason, and the run waits (retry it inside a window, or roll back).
    /// A phase already under way (recovering after a restart) goes on: stopping it halfway would be worse.
    /// </summary>
    private async Task<bool> ClosedAtPointOfNoReturnAsync(Run run, RunbookDefinition runbook, RunPhase phase, Targets.Target target, CancellationToken ct)
    {
        if (phase.IsRollback || phase.State != PhaseState.Pending || runbook.Phase(phase.Key) is not { PointOfNoReturn: true })
        {
            return false;
        }

        var windows = Core.Scheduling.MaintenanceWindows.Of(target.MaintenanceWindows, target.TimeZone);
        if (windows.Refusal(clock.GetUtcNow(), $"{phase.Title} is the point of no return and runs") is not { } closed)
        {
            return false;
        }

        phase.State = PhaseState.Failed;
        phase.Message = closed + " Nothing of it ran: retry it inside a window, or roll back.";
        phase.EndedAt = clock.GetUtcNow();
        var log = new RunLogWriter(scopes, run.Id, [], clock);
        await log.WriteAsync(phase, "── " + phase.Message, ct: ct);
        await log.FlushAsync(ct);
        await audit.RecordAsync("system", "run.phase", run.TargetId, $"run {run.Id}", new { run = run.Id, phase = phase.Key, phase.Attempt, state = phase.State.ToString(), message = phase.Message, rollback = false, maintenanceWindow = windows.Describe() }, ct);
        await FinishRunAsync(run, RunState.Failed, $"{phase.Title}: {phase.Message}", ct, stayActive: true);
        return true;
    }

    /// <summary>With no phase left the run ends; at a manual phase it waits for its checklist.</summary>
    private async Task<int?> AdvanceAsync(Run run, RunPhase? next, CancellationToken ct)
    {
        var rollingBack = run.State == RunState.RollingBack;
        if (next is null)
        {
            await FinishRunAsync(run, RunStateMachine.Finished(rollingBack), rollingBack ? "Rolled back." : "Succeeded.", ct);
            return null;
        }

        next.State = PhaseState.Running;
        next.StartedAt ??= clock.GetUtcNow();
        var later = run.Phases.Where(p => !p.IsRollback && p.Index > next.Index).OrderBy(p => p.Index).FirstOrDefault();
        await FinishRunAsync(run, RunState.WaitingForChecklist, later is null
            ? "Every automatic phase is done; tick the checklist to complete the run."
            : $"Tick the checklist ({next.Title}) for the run to go on with {later.Title}.", ct, stayActive: true);
        return null;
    }

    private async Task FinishRunAsync(Run run, RunState state, string message, CancellationToken ct, bool stayActive = false)
    {
        run.State = state;
        run.Message = message;
        if (!stayActive)
        {
            run.ActiveTargetId = null;
            run.EndedAt = clock.GetUtcNow();
        }

        run.Version = Guid.NewGuid();
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync("system", "run.state", run.TargetId, $"run {run.Id}", new { run = run.Id, state = state.ToString(), message }, ct);
        Chains.ChainJob.EnqueueAfter(jobs, run);
    }

    /// <summary>A manual phase (the checklist) is not run: the run waits at it for people.</summary>
    private static bool IsManual(RunbookDefinition runbook, RunPhase phase) => !phase.IsRollback && runbook.Phase(phase.Key)?.Kind == PhaseKind.Manual;
}
