using Hangfire;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Rehearsals;

/// <summary>
/// The recurring cleanup of rehearsals (issue 18, ADR 0022): a rehearsal that ended without its cleanup having run to
/// success (the target could not be reached at its end, or the cleanup step itself was cut off) left its copy on the
/// target: the scratch database or throwaway cluster, the scratch directory with its venv, the rehearsal's own dump.
/// Every hour this job runs that rehearsal's own cleanup phase again (a new attempt of it, as its runbook declares it:
/// idempotent, names quoted by the product's script), logged in the rehearsal's log and audited
/// (<c>run.rehearsal-leftovers</c>). The rehearsal's outcome stays what it was. A target still unreachable is left for
/// the next hour, and the job fails naming it (visible under /jobs); a target not pinned (blocked, deleted) is not
/// contacted.
/// </summary>
public sealed class RehearsalLeftovers(
    AppDbContext db,
    IServiceProvider services,
    IServiceScopeFactory scopes,
    RunbookCatalog runbooks,
    AuditLog audit,
    DashboardNode node,
    TimeProvider clock,
    ILogger<RehearsalLeftovers> logger)
{
    public const string JobId = "rehearsal-leftovers";

    /// <summary>What a rehearsal's cleanup phase says while its copy waits on the target for this job.</summary>
    public const string LeftMessage = "Not run: the target could not be reached at the rehearsal's end. The copy is left there; the recurring cleanup removes it once the target can be reached.";

    [AutomaticRetry(Attempts = 0)]
    [DisableConcurrentExecution(timeoutInSeconds: 60)]
    [JobDisplayName("Rehearsals: remove the copies left on targets that could not be reached at the rehearsal's end")]
    public async Task RunAsync(CancellationToken ct)
    {
        var left = await LeftAsync(ct);
        var unreachable = new List<string>();
        var failed = new List<string>();
        foreach (var (runId, phaseId) in left)
        {
            switch (await CleanAsync(runId, phaseId, ct))
            {
                case (false, { } why):
                    unreachable.Add(why);
                    break;
                case (true, { } why):
                    failed.Add(why);
                    break;
            }
        }

        if (unreachable.Count > 0 || failed.Count > 0)
        {
            throw new InvalidOperationException("Rehearsal copies were left in place (tried again in an hour): " + string.Join("; ", unreachable.Concat(failed)));
        }
    }

    /// <summary>Ended rehearsals whose cleanup phase (the runbook's <see cref="PhaseDefinition.Finally"/> phase) has not succeeded, and that made something.</summary>
    private async Task<List<(int RunId, int PhaseId)>> LeftAsync(CancellationToken ct)
    {
        var ended = await db.Runs.AsNoTracking().Include(r => r.Phases)
            .Where(r => r.RunbookId.EndsWith(RehearsalRunbooks.Suffix) && r.ActiveTargetId == null && r.EndedAt != null
                && r.Phases.Any(p => !p.IsRollback && (p.State == PhaseState.Pending || p.State == PhaseState.Failed || p.State == PhaseState.Running)))
            .ToListAsync(ct);
        var left = new List<(int, int)>();
        foreach (var run in ended.Where(r => !RunStateMachine.IsMoving(r.State)))
        {
            if (runbooks.Find(run.RunbookId) is not { } runbook
                || run.Phases.FirstOrDefault(p => !p.IsRollback && runbook.Phase(p.Key) is { Finally: true }) is not { } cleanup
                || cleanup.State is not (PhaseState.Pending or PhaseState.Failed or PhaseState.Running))
            {
                continue;
            }

            // Nothing started on the target (it was unreachable from the first phase): nothing was made there.
            if (run.Phases.Any(p => p.Id != cleanup.Id && !p.IsRollback && p.StartedAt is not null) || cleanup.StartedAt is not null)
            {
                left.Add((run.Id, cleanup.Id));
            }
        }

        return left;
    }

    /// <summary>
    /// One rehearsal's cleanup, a new attempt of its phase. Returns (reached, why) with why null when the copy is gone;
    /// reached false when the target could not be reached (nothing changed then).
    /// </summary>
    private async Task<(bool Reached, string? Why)> CleanAsync(int runId, int phaseId, CancellationToken ct)
    {
        var run = await db.Runs.Include(r => r.Phases).FirstAsync(r => r.Id == runId, ct);
        var phase = run.Phases.First(p => p.Id == phaseId);
        var runbook = runbooks.Find(run.RunbookId)!;
        var target = await db.Targets.AsNoTracking().FirstOrDefaultAsync(t => t.Id == run.TargetId, ct);
        if (target is null || target.HostKeyState != HostKeyState.Pinned)
        {
            // Deleted, or blocked until an Admin re-pins it: nothing is sent to it.
            return (true, null);
        }

        if (runbook.ExecutionOf(phase) is not { } execution)
        {
            return (true, $"run {run.Id}: its runbook no longer declares the phase {phase.Key}");
        }

        // The phase's claim, as a run job takes it (several nodes may run this job): held for the step's whole time limit.
        var now = clock.GetUtcNow().UtcDateTime;
        var claimed = await db.RunPhases
            .Where(p => p.Id == phase.Id && p.State != PhaseState.Succeeded && (p.LeaseExpiresAt == null || p.LeaseExpiresAt < now))
            .ExecuteUpdateAsync(s => s.SetProperty(p => p.LeaseOwner, node.Name).SetProperty(p => p.LeaseExpiresAt, now + execution.Timeout + TimeSpan.FromMinutes(5)), ct);
        if (claimed == 0)
        {
            return (true, null);
        }

        try
        {
            var product = RunbookCatalog.Runtime(services, runbook);
            IProductSession session;
            try
            {
                session = await product.OpenSessionAsync(target, ct);
            }
            catch (Exception ex) when (ex is SshConnectionException or HostKeyNotPinnedException or InvalidOperationException or TimeoutException)
            {
                logger.LogWarning(ex, "The copy of rehearsal {Run} on {Target} was not removed: {Message}", run.Id, target.Name, ex.Message);
                return (false, $"{target.Name} (rehearsal {run.Id}): {ex.Message}");
            }

            await using var _ = session;
            var log = new RunLogWriter(scopes, run.Id, session.Secrets, clock);
            var previous = phase.Message;
            phase.Attempt++;
            phase.StepId = null;
            phase.LogOffset = 0;
            phase.ExitCode = null;
            phase.Message = null;
            phase.StartedAt = clock.GetUtcNow();
            phase.EndedAt = null;
            await log.WriteAndCommitAsync(phase, $"── {phase.Title}: by the recurring cleanup (attempt {phase.Attempt}), the copy having been left on the target" + (previous is null ? "" : $" ({previous})"),
                new PhaseChange(PhaseState.Running), ct);
            phase.State = PhaseState.Running;
            await db.SaveChangesAsync(ct);

            PhaseOutcome outcome;
            try
            {
                var context = new PhaseContext(run, phase, runbook, target, session, product, new RemoteStepEngine(session.Shell, logger: logger), log, db, recovering: false, ct)
                {
                    AttemptStartedAt = phase.StartedAt,
                    Clock = clock,
                };
                outcome = await PhaseRunner.RunAsync(context, execution.Execution, execution.Timeout, idempotent: true);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                outcome = PhaseOutcome.Failed(ex.Message);
            }

            var message = outcome.Message is null ? null : log.Masked(outcome.Message);
            await audit.RecordAsync("system", "run.rehearsal-leftovers", run.TargetId, $"run {run.Id}",
                new { run = run.Id, phase = phase.Key, phase.Attempt, state = outcome.State.ToString(), message, by = JobId }, ct);
            await log.WriteAndCommitAsync(phase, outcome.State == PhaseState.Succeeded
                    ? $"── {phase.Title}: done by the recurring cleanup{(message is null ? "" : " · " + message)}"
                    : $"── {phase.Title}: {outcome.State}: {message} (the recurring cleanup tries again in an hour)",
                new PhaseChange(outcome.State, Final: true, message, outcome.ExitCode), ct);
            phase.State = outcome.State;
            phase.Message = message;
            phase.ExitCode = outcome.ExitCode;
            phase.EndedAt = clock.GetUtcNow();
            run.Version = Guid.NewGuid();
            await db.SaveChangesAsync(ct);
            return outcome.State == PhaseState.Succeeded ? (true, null) : (true, $"{target.Name} (rehearsal {run.Id}): {message}");
        }
        finally
        {
            await db.RunPhases.Where(p => p.Id == phaseId && p.LeaseOwner == node.Name)
                .ExecuteUpdateAsync(s => s.SetProperty(p => p.LeaseExpiresAt, (DateTime?)null), CancellationToken.None);
        }
    }
}
