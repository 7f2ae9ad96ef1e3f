using UpgradeConsole.Web.Runbooks;

namespace UpgradeConsole.Web.Runs;

/// <summary>What a person (page, API, CLI) asks of a run.</summary>
public enum RunAction
{
    Approve,
    Start,
    Cancel,
    Retry,
    MarkDone,
    OverridePreflight,
    Rollback,
    Abandon,
    TickChecklist,
}

/// <summary>Why an action is refused: the kind, for code; the message, for people.</summary>
public enum RefusalReason
{
    /// <summary>The run's state does not allow the action at all.</summary>
    NotInThisState,
    NoApprovalAwaited,

    /// <summary>The state allows it, but no phase stopped the run (it stopped before one ran, e.g. the target was unreachable).</summary>
    NoStoppedPhase,

    /// <summary>The phase that stopped the run is not the preflight gate.</summary>
    NotAFailedGate,
    OwnRun,
    ApprovalMissing,
    ApproverCannotStart,
    NotSafeToRunTwice,
    GateNeverMarkedDone,
    RollbackFailedRetryIt,
    NoBackupToRestore,
    StepStillRunning,
    NotActive,
    RunsInsideTheDashboard,

    /// <summary>The target has maintenance windows and none is open at the time the run would start.</summary>
    OutsideMaintenanceWindow,

    /// <summary>The time asked for a scheduled start is not usable (past, too far ahead).</summary>
    BadScheduleTime,

    /// <summary>Unscheduling a run that has no schedule.</summary>
    NotScheduled,

    /// <summary>The run is a rehearsal: only its running step can be cancelled.</summary>
    Rehearsal,

    /// <summary>A real run may not start while a rehearsal runs on its target (issue 18).</summary>
    RehearsalRunning,
}

/// <summary>An action the run's state machine refuses, with the words the page and the API show (409).</summary>
public sealed record RunRefusal(RunAction Action, RefusalReason Reason, string Message);

/// <summary>
/// The run state machine in one place: which actions each state allows, what else an action needs
/// (an approval by someone else, a confirmation for a phase that is not safe to run twice, a gate that
/// is never marked done), in which states the driver moves the run, and where a phase's outcome
/// leaves it. The run service, the pages, the API and the driver all ask here.
/// </summary>
public static class RunStateMachine
{
    private static readonly Dictionary<RunState, RunAction[]> Allowed = new()
    {
        [RunState.Planned] = [RunAction.Approve, RunAction.Start, RunAction.Abandon],
        [RunState.Running] = [RunAction.Cancel],
        [RunState.WaitingForChecklist] = [RunAction.Rollback, RunAction.Abandon, RunAction.TickChecklist],
        [RunState.Succeeded] = [],
        [RunState.Failed] = [RunAction.Retry, RunAction.MarkDone, RunAction.OverridePreflight, RunAction.Rollback, RunAction.Abandon],
        [RunState.NeedsAttention] = [RunAction.Retry, RunAction.MarkDone, RunAction.Rollback, RunAction.Abandon],
        [RunState.RollingBack] = [RunAction.Cancel],
        [RunState.RolledBack] = [],
        [RunState.RollbackFailed] = [RunAction.Retry, RunAction.MarkDone, RunAction.Abandon],
        [RunState.Abandoned] = [],
    };

    /// <summary>Whether <paramref name="state"/> allows <paramref name="action"/> at all (other conditions aside).</summary>
    public static bool Allows(RunState state, RunAction action) => Allowed[state].Contains(action);

    public static IReadOnlyList<RunAction> AllowedIn(RunState state) => Allowed[state];

    /// <summary>The states in which the driver moves the run on by itself (phase jobs run).</summary>
    public static bool IsMoving(RunState state) => state is RunState.Running or RunState.RollingBack;

    /// <summary>Where a phase that did not succeed leaves the run.</summary>
    public static RunState AfterStoppedPhase(bool rollingBack, PhaseState outcome) =>
        rollingBack ? RunState.RollbackFailed : outcome == PhaseState.NeedsAttention ? RunState.NeedsAttention : RunState.Failed;

    /// <summary>Where the run ends when no phase of its direction is left.</summary>
    public static RunState Finished(bool rollingBack) => rollingBack ? RunState.RolledBack : RunState.Succeeded;

    /// <summary>The state a run moves in once a stopped phase of it is to run again (or was marked done).</summary>
    public static RunState Resumed(RunPhase phase) => phase.IsRollback ? RunState.RollingBack : RunState.Running;

    /// <summary>The first phase that stopped the run (failed, or its outcome unknown).</summary>
    public static RunPhase? StoppedPhase(Run run) =>
        run.Phases.OrderBy(p => p.Index).FirstOrDefault(p => p.State is PhaseState.Failed or PhaseState.NeedsAttention);

    /// <summary>
    /// The phase the run is at: the first of its direction (the runbook's, or the rollback's while rolling
    /// back) not yet done; null when every one is.
    /// </summary>
    public static RunPhase? CurrentPhase(Run run)
    {
        var rollingBack = run.State == RunState.RollingBack;
        return run.Phases.Where(p => p.IsRollback == rollingBack).OrderBy(p => p.Index)
            .FirstOrDefault(p => p.State is not (PhaseState.Succeeded or PhaseState.MarkedDone or PhaseState.Skipped));
    }

    /// <summary>
    /// The phase the run is at, as its runbook sees it: after a failed phase, a later phase that runs
    /// also after a failure (<see cref="PhaseDefinition.Finally"/>: a rehearsal's cleanup) and has not run yet.
    /// </summary>
    public static RunPhase? CurrentPhase(Run run, RunbookDefinition? runbook)
    {
        var phase = CurrentPhase(run);
        if (phase is { State: PhaseState.Failed or PhaseState.NeedsAttention } && run.State == RunState.Running && runbook is not null
            && FinallyAfter(run, runbook, phase) is { } cleanup)
        {
            return cleanup;
        }

        return phase;
    }

    /// <summary>The first phase after <paramref name="failed"/> that runs also after a failure and is still to run.</summary>
    public static RunPhase? FinallyAfter(Run run, RunbookDefinition runbook, RunPhase failed) =>
        run.Phases.Where(p => !p.IsRollback && p.Index > failed.Index && p.State is PhaseState.Pending or PhaseState.Running && runbook.Phase(p.Key) is { Finally: true })
            .OrderBy(p => p.Index).FirstOrDefault();

    /// <summary>
    /// Why <paramref name="actor"/> may not do <paramref name="action"/> to the run now, or null. The
    /// rollback's own condition (a backup to restore) is the runbook's: see <see cref="RollbackPlan"/>.
    /// </summary>
    public static RunRefusal? Check(RunAction action, Run run, RunbookDefinition? runbook, string? actor, bool confirmed = false)
    {
        RunRefusal Refuse(RefusalReason reason, string message) => new(action, reason, message);
        var allowed = Allows(run.State, action);
        if (runbook is { IsRehearsal: true } && action != RunAction.Cancel)
        {
            // A rehearsal changes nothing of production and removes its copy when it ends: nothing to resume or undo.
            return Refuse(RefusalReason.Rehearsal, "A rehearsal is not resumed, rolled back or ticked off: its copy is removed when it ends. Start a new rehearsal instead.");
        }

        switch (action)
        {
            case RunAction.Approve:
                if (!allowed || !run.RequiresApproval || run.ApprovedBy is not null)
                {
                    return Refuse(allowed ? RefusalReason.NoApprovalAwaited : RefusalReason.NotInThisState, "This run does not wait for an approval.");
                }

                return run.PlannedBy == actor ? Refuse(RefusalReason.OwnRun, "Nobody approves their own run: another Operator or Admin must approve it.") : null;

            case RunAction.Start:
                if (!allowed)
                {
                    return Refuse(RefusalReason.NotInThisState, $"The run is {run.State}, not planned.");
                }

                if (run.RequiresApproval && run.ApprovedBy is null)
                {
                    return Refuse(RefusalReason.ApprovalMissing, "This target needs a second person's approval before the run starts.");
                }

                return run.RequiresApproval && run.ApprovedBy == actor
                    ? Refuse(RefusalReason.ApproverCannotStart, "The person who approved the run cannot also start it.")
                    : null;

            case RunAction.Cancel:
                return allowed ? null : Refuse(RefusalReason.NotInThisState, "No step of this run is running.");

            case RunAction.Retry:
            {
                var phase = StoppedPhase(run);
                if (phase is null || !allowed)
                {
                    return Refuse(allowed ? RefusalReason.NoStoppedPhase : RefusalReason.NotInThisState, "No failed phase to retry.");
                }

                var definition = phase.IsRollback ? null : runbook?.Phase(phase.Key);
                return definition is { Idempotent: false } && !confirmed
                    ? Refuse(RefusalReason.NotSafeToRunTwice, $"{phase.Title} is not safe to run twice. Check the target first, then confirm the retry explicitly.")
                    : null;
            }

            case RunAction.MarkDone:
            {
                var phase = StoppedPhase(run);
                if (phase is null || !allowed)
                {
                    return Refuse(allowed ? RefusalReason.NoStoppedPhase : RefusalReason.NotInThisState, "No failed phase to mark done.");
                }

                return PreflightGate.RefuseMarkDone(runbook, phase) is { } refusal ? Refuse(RefusalReason.GateNeverMarkedDone, refusal) : null;
            }

            case RunAction.OverridePreflight:
            {
                var phase = StoppedPhase(run);
                return phase is null || !allowed || !PreflightGate.IsGate(runbook, phase)
                    ? Refuse(allowed ? RefusalReason.NotAFailedGate : RefusalReason.NotInThisState, "Overrides apply to a failed preflight phase only.")
                    : null;
            }

            case RunAction.Rollback:
                if (run.State == RunState.RollbackFailed)
                {
                    return Refuse(RefusalReason.RollbackFailedRetryIt, "The rollback itself failed: retry its failed step, or mark it done.");
                }

                return allowed ? null : Refuse(RefusalReason.NotInThisState, $"A {run.State} run cannot be rolled back now.");

            case RunAction.Abandon:
                if (!run.IsActive)
                {
                    return Refuse(RefusalReason.NotActive, "The run is not active.");
                }

                return allowed ? null : Refuse(RefusalReason.StepStillRunning, "Cancel the running step first.");

            case RunAction.TickChecklist:
                return allowed ? null : Refuse(RefusalReason.NotInThisState, "The checklist opens once every automatic phase is done.");

            default:
                throw new ArgumentOutOfRangeException(nameof(action), action, null);
        }
    }
}

/// <summary>
/// The rollback phases a run needs, read from its runbook: each action of the runbook's rollback order
/// that undoes a phase which has started (is no longer pending), once. An action that cannot work
/// (a database to restore without a dump) refuses the rollback instead.
/// </summary>
public static class RollbackPlan
{
    public static (IReadOnlyList<(string Key, string Title)> Steps, RunRefusal? Refusal) For(Run run, RunbookDefinition runbook)
    {
        // A phase not chosen on the plan (Skipped) changed nothing: nothing of it to undo.
        var started = run.Phases.Where(p => !p.IsRollback && p.State is not (PhaseState.Pending or PhaseState.Skipped)).Select(p => p.Key).ToHashSet(StringComparer.Ordinal);
        var needed = runbook.Phases.Where(p => started.Contains(p.Key)).SelectMany(p => p.Rollback).ToHashSet();
        var inputs = new RollbackInputs(run.FromVersion, run.ToVersion, run.BackupPath);
        var steps = new List<(string, string)>();
        foreach (var action in runbook.RollbackOrder.Where(needed.Contains))
        {
            if (action.Refuse(inputs) is { } refusal)
            {
                return ([], new RunRefusal(RunAction.Rollback, RefusalReason.NoBackupToRestore, refusal));
            }

            steps.Add((action.Key, action.Title(inputs)));
        }

        return (steps, null);
    }
}
