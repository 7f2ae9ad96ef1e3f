using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// The run state machine as a table: every state against every action, on a run as that state leaves it,
/// then the conditions beyond the state (approvals, a phase not safe to run twice, the preflight gate,
/// what the rollback needs) and where a phase's outcome leaves the run. The messages are the ones the
/// API answers with (409) and the run page shows, so they are asserted word for word where they matter.
/// </summary>
public sealed class RunStateMachineTests
{
    private const string Planner = "olivia";
    private const string Other = "oscar";

    // ok: allowed. Otherwise the reason of the refusal. Columns in RunAction order:
    //                                                       Approve            Start           Cancel          Retry           MarkDone        OverridePreflight Rollback                 Abandon            TickChecklist
    private static readonly Dictionary<RunState, string[]> Expected = new()
    {
        [RunState.Planned] = ["NoApprovalAwaited", "ok", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "ok", "NotInThisState"],
        [RunState.Running] = ["NotInThisState", "NotInThisState", "ok", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "StepStillRunning", "NotInThisState"],
        [RunState.WaitingForChecklist] = ["NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "ok", "ok", "ok"],
        [RunState.Succeeded] = ["NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotActive", "NotInThisState"],
        [RunState.Failed] = ["NotInThisState", "NotInThisState", "NotInThisState", "ok", "ok", "NotAFailedGate", "ok", "ok", "NotInThisState"],
        [RunState.NeedsAttention] = ["NotInThisState", "NotInThisState", "NotInThisState", "ok", "ok", "NotInThisState", "ok", "ok", "NotInThisState"],
        [RunState.RollingBack] = ["NotInThisState", "NotInThisState", "ok", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "StepStillRunning", "NotInThisState"],
        [RunState.RolledBack] = ["NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotActive", "NotInThisState"],
        [RunState.RollbackFailed] = ["NotInThisState", "NotInThisState", "NotInThisState", "ok", "ok", "NotInThisState", "RollbackFailedRetryIt", "ok", "NotInThisState"],
        [RunState.Abandoned] = ["NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotInThisState", "NotActive", "NotInThisState"],
    };

    public static TheoryData<RunState, RunAction> EveryStateAndAction()
    {
        var data = new TheoryData<RunState, RunAction>();
        foreach (var state in Enum.GetValues<RunState>())
        {
            foreach (var action in Enum.GetValues<RunAction>())
            {
                data.Add(state, action);
            }
        }

        return data;
    }

    [Fact]
    public void Expected_CoversEveryStateAndAction()
    {
        Assert.Equal(Enum.GetValues<RunState>().Order(), Expected.Keys.Order());
        Assert.All(Expected.Values, row => Assert.Equal(Enum.GetValues<RunAction>().Length, row.Length));
    }

    [Theory]
    [MemberData(nameof(EveryStateAndAction))]
    public void Check_EveryStateAndAction_AllowsOrRefusesAsTheTableSays(RunState state, RunAction action)
    {
        var run = RunIn(state);
        var expected = Expected[state][(int)action];

        var refusal = RunStateMachine.Check(action, run, FractalRunbooks.Upgrade2170, Other);

        if (expected == "ok")
        {
            Assert.Null(refusal);
        }
        else
        {
            Assert.NotNull(refusal);
            Assert.Equal(action, refusal.Action);
            Assert.Equal(Enum.Parse<RefusalReason>(expected), refusal.Reason);
            Assert.False(string.IsNullOrWhiteSpace(refusal.Message));
        }
    }

    [Theory]
    [MemberData(nameof(EveryStateAndAction))]
    public void Allows_EveryStateAndAction_MatchesTheTableExceptForConditionsBeyondTheState(RunState state, RunAction action)
    {
        // Planned allows an approval (the canonical planned run just does not ask for one); Failed allows an
        // override (the canonical failed run did not fail at its preflight).
        var stateAllows = Expected[state][(int)action] is "ok" or "NoApprovalAwaited" or "NotAFailedGate";

        Assert.Equal(stateAllows, RunStateMachine.Allows(state, action));
    }

    [Fact]
    public void Check_Messages_AreTheOnesTheApiAndPagesShow()
    {
        Assert.Equal("The run is Running, not planned.", RunStateMachine.Check(RunAction.Start, RunIn(RunState.Running), null, Other)!.Message);
        Assert.Equal("No step of this run is running.", RunStateMachine.Check(RunAction.Cancel, RunIn(RunState.Failed), null, Other)!.Message);
        Assert.Equal("No failed phase to retry.", RunStateMachine.Check(RunAction.Retry, RunIn(RunState.Running), null, Other)!.Message);
        Assert.Equal("No failed phase to mark done.", RunStateMachine.Check(RunAction.MarkDone, RunIn(RunState.Succeeded), null, Other)!.Message);
        Assert.Equal("Overrides apply to a failed preflight phase only.", RunStateMachine.Check(RunAction.OverridePreflight, RunIn(RunState.Failed), FractalRunbooks.Upgrade2170, Other)!.Message);
        Assert.Equal("A Running run cannot be rolled back now.", RunStateMachine.Check(RunAction.Rollback, RunIn(RunState.Running), null, Other)!.Message);
        Assert.Equal("The rollback itself failed: retry its failed step, or mark it done.", RunStateMachine.Check(RunAction.Rollback, RunIn(RunState.RollbackFailed), null, Other)!.Message);
        Assert.Equal("The run is not active.", RunStateMachine.Check(RunAction.Abandon, RunIn(RunState.Succeeded), null, Other)!.Message);
        Assert.Equal("Cancel the running step first.", RunStateMachine.Check(RunAction.Abandon, RunIn(RunState.Running), null, Other)!.Message);
        Assert.Equal("The checklist opens once every automatic phase is done.", RunStateMachine.Check(RunAction.TickChecklist, RunIn(RunState.Failed), null, Other)!.Message);
        Assert.Equal("This run does not wait for an approval.", RunStateMachine.Check(RunAction.Approve, RunIn(RunState.Planned), null, Other)!.Message);
    }

    [Fact]
    public void RetryAndMarkDone_AFailedRunWithoutAStoppedPhase_AreRefused()
    {
        // The target was unreachable: the run failed before its phase ran.
        var run = RunStoppedAt(FractalRunbooks.Upgrade2170, "backup", PhaseState.Pending, RunState.Failed);

        Assert.Equal(RefusalReason.NoStoppedPhase, RunStateMachine.Check(RunAction.Retry, run, FractalRunbooks.Upgrade2170, Other)?.Reason);
        Assert.Equal(RefusalReason.NoStoppedPhase, RunStateMachine.Check(RunAction.MarkDone, run, FractalRunbooks.Upgrade2170, Other)?.Reason);
        Assert.Null(RunStateMachine.Check(RunAction.Rollback, run, FractalRunbooks.Upgrade2170, Other));
    }

    [Fact]
    public void Approve_NeedsAnotherPersonOnce()
    {
        var run = RunIn(RunState.Planned);
        run.RequiresApproval = true;

        Assert.Null(RunStateMachine.Check(RunAction.Approve, run, null, Other));
        var own = RunStateMachine.Check(RunAction.Approve, run, null, Planner);
        Assert.Equal(RefusalReason.OwnRun, own?.Reason);
        Assert.Equal("Nobody approves their own run: another Operator or Admin must approve it.", own?.Message);

        run.ApprovedBy = Other;
        Assert.Equal(RefusalReason.NoApprovalAwaited, RunStateMachine.Check(RunAction.Approve, run, null, "third")?.Reason);
    }

    [Fact]
    public void Start_WithApprovalRequired_NeedsTheApprovalAndAnotherStarter()
    {
        var run = RunIn(RunState.Planned);
        run.RequiresApproval = true;

        var missing = RunStateMachine.Check(RunAction.Start, run, null, Planner);
        Assert.Equal(RefusalReason.ApprovalMissing, missing?.Reason);
        Assert.Equal("This target needs a second person's approval before the run starts.", missing?.Message);

        run.ApprovedBy = Other;
        var approver = RunStateMachine.Check(RunAction.Start, run, null, Other);
        Assert.Equal(RefusalReason.ApproverCannotStart, approver?.Reason);
        Assert.Equal("The person who approved the run cannot also start it.", approver?.Message);
        Assert.Null(RunStateMachine.Check(RunAction.Start, run, null, Planner));
    }

    [Fact]
    public void Retry_APhaseNotSafeToRunTwice_NeedsAnExplicitConfirmation()
    {
        var run = RunStoppedAt(FractalRunbooks.Upgrade2170, "update-db-data", PhaseState.NeedsAttention, RunState.NeedsAttention);

        var refusal = RunStateMachine.Check(RunAction.Retry, run, FractalRunbooks.Upgrade2170, Other);
        Assert.Equal(RefusalReason.NotSafeToRunTwice, refusal?.Reason);
        Assert.Equal("Migrate the data (fractalctl update-db-data) is not safe to run twice. Check the target first, then confirm the retry explicitly.", refusal?.Message);
        Assert.Null(RunStateMachine.Check(RunAction.Retry, run, FractalRunbooks.Upgrade2170, Other, confirmed: true));
    }

    [Fact]
    public void FailedPreflight_IsNeverMarkedDone_ButAnAdminMayOverrideIt()
    {
        var run = RunStoppedAt(FractalRunbooks.Upgrade2170, "preflight", PhaseState.Failed, RunState.Failed);

        var markDone = RunStateMachine.Check(RunAction.MarkDone, run, FractalRunbooks.Upgrade2170, Other);
        Assert.Equal(RefusalReason.GateNeverMarkedDone, markDone?.Reason);
        Assert.Equal(PreflightGate.MarkDoneRefusal, markDone?.Message);
        Assert.Null(RunStateMachine.Check(RunAction.OverridePreflight, run, FractalRunbooks.Upgrade2170, Other));
    }

    [Fact]
    public void Outcomes_LeaveTheRunWhereTheDriverPutsIt()
    {
        Assert.Equal(RunState.Failed, RunStateMachine.AfterStoppedPhase(rollingBack: false, PhaseState.Failed));
        Assert.Equal(RunState.NeedsAttention, RunStateMachine.AfterStoppedPhase(rollingBack: false, PhaseState.NeedsAttention));
        Assert.Equal(RunState.RollbackFailed, RunStateMachine.AfterStoppedPhase(rollingBack: true, PhaseState.NeedsAttention));
        Assert.Equal(RunState.RollbackFailed, RunStateMachine.AfterStoppedPhase(rollingBack: true, PhaseState.Failed));
        Assert.Equal(RunState.Succeeded, RunStateMachine.Finished(rollingBack: false));
        Assert.Equal(RunState.RolledBack, RunStateMachine.Finished(rollingBack: true));
        Assert.Equal(RunState.Running, RunStateMachine.Resumed(new RunPhase { Key = "backup" }));
        Assert.Equal(RunState.RollingBack, RunStateMachine.Resumed(new RunPhase { Key = "rb-stop", IsRollback = true }));
        Assert.Equal([RunState.Running, RunState.RollingBack], Enum.GetValues<RunState>().Where(RunStateMachine.IsMoving));
    }

    [Fact]
    public void RollbackPlan_BeforeThePointOfNoReturn_UndoesTheServiceOnly()
    {
        var run = RunStoppedAt(FractalRunbooks.Upgrade2170, "stop", PhaseState.Failed, RunState.Failed);

        var (steps, refusal) = RollbackPlan.For(run, FractalRunbooks.Upgrade2170);

        Assert.Null(refusal);
        Assert.Equal([("rb-stop", "Stop fractal-server"), ("rb-start", "Start fractal-server 2.16.4")], steps);
    }

    [Fact]
    public void RollbackPlan_PastThePointOfNoReturn_RestoresTheDatabaseInTheRunbooksOrder()
    {
        var run = RunStoppedAt(FractalRunbooks.Upgrade2170, "update-db-data", PhaseState.NeedsAttention, RunState.NeedsAttention);
        run.BackupPath = "/backup/fractal-run1-a1.dump";

        var (steps, refusal) = RollbackPlan.For(run, FractalRunbooks.Upgrade2170);

        Assert.Null(refusal);
        Assert.Equal(
            [
                ("rb-stop", "Stop fractal-server"),
                ("rb-restore-db", "Restore the database from this run's dump"),
                ("rb-env", "Put the 2.16 env file back"),
                ("rb-pip", "Install fractal-server 2.16.4 again"),
                ("rb-start", "Start fractal-server 2.16.4"),
                ("rb-verify", "Check the restored database"),
            ],
            steps);
    }

    [Fact]
    public void RollbackPlan_PastThePointOfNoReturnWithoutADump_IsRefused()
    {
        var run = RunStoppedAt(FractalRunbooks.Upgrade2170, "set-db", PhaseState.Failed, RunState.Failed);

        var (steps, refusal) = RollbackPlan.For(run, FractalRunbooks.Upgrade2170);

        Assert.Empty(steps);
        Assert.Equal(RefusalReason.NoBackupToRestore, refusal?.Reason);
        Assert.Equal("The database was changed but this run has no verified backup to restore.", refusal?.Message);
    }

    [Fact]
    public void RollbackPlan_NothingStartedYet_HasNoStep()
    {
        var run = RunStoppedAt(FractalRunbooks.Upgrade2170, "preflight", PhaseState.Failed, RunState.Failed);

        Assert.Empty(RollbackPlan.For(run, FractalRunbooks.Upgrade2170).Steps);
    }

    /// <summary>A run as the state leaves it: stopped states have a stopped phase, finished ones are no longer active.</summary>
    private static Run RunIn(RunState state) => state switch
    {
        RunState.Planned => Planned(),
        RunState.Running => Moving(FractalRunbooks.Upgrade2170, "backup", RunState.Running),
        RunState.WaitingForChecklist => Moving(FractalRunbooks.Upgrade2170, "checklist", RunState.WaitingForChecklist),
        RunState.Failed => RunStoppedAt(FractalRunbooks.Upgrade2170, "backup", PhaseState.Failed, RunState.Failed),
        RunState.NeedsAttention => RunStoppedAt(FractalRunbooks.Upgrade2170, "set-db", PhaseState.NeedsAttention, RunState.NeedsAttention),
        RunState.RollingBack => RollingBack(PhaseState.Running, RunState.RollingBack),
        RunState.RollbackFailed => RollingBack(PhaseState.Failed, RunState.RollbackFailed),
        _ => Finished(state),
    };

    private static Run Planned()
    {
        var run = Phases(FractalRunbooks.Upgrade2170, "none", PhaseState.Pending);
        run.State = RunState.Planned;
        return run;
    }

    private static Run Moving(RunbookDefinition runbook, string at, RunState state)
    {
        var run = Phases(runbook, at, PhaseState.Running);
        run.State = state;
        return run;
    }

    private static Run RunStoppedAt(RunbookDefinition runbook, string at, PhaseState phase, RunState state)
    {
        var run = Phases(runbook, at, phase);
        run.State = state;
        return run;
    }

    private static Run RollingBack(PhaseState rollbackPhase, RunState state)
    {
        var run = Phases(FractalRunbooks.Upgrade2170, "stop", PhaseState.Failed);
        run.Phases.Add(new RunPhase { Index = run.Phases.Count, Key = "rb-stop", Title = "Stop fractal-server", IsRollback = true, State = rollbackPhase });
        run.State = state;
        return run;
    }

    private static Run Finished(RunState state)
    {
        var run = Phases(FractalRunbooks.Upgrade2170, "none", PhaseState.Succeeded);
        run.State = state;
        run.ActiveTargetId = null;
        return run;
    }

    /// <summary>The runbook's phases: done before <paramref name="at"/>, <paramref name="state"/> at it, pending after.</summary>
    private static Run Phases(RunbookDefinition runbook, string at, PhaseState state)
    {
        var index = runbook.Phases.ToList().FindIndex(p => p.Key == at);
        return new Run
        {
            Id = 1,
            TargetId = 7,
            ActiveTargetId = 7,
            RunbookId = runbook.Id,
            FromVersion = "2.16.4",
            ToVersion = "2.17.0",
            PlannedBy = Planner,
            Phases =
            [
                .. runbook.Phases.Select((p, i) => new RunPhase
                {
                    Index = i,
                    Key = p.Key,
                    Title = p.Title,
                    State = index < 0 ? (state == PhaseState.Succeeded ? PhaseState.Succeeded : PhaseState.Pending)
                        : i < index ? PhaseState.Succeeded : i == index ? state : PhaseState.Pending,
                }),
            ],
        };
    }
}
