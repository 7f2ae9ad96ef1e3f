using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>The preflight gate as a rule: which phases it holds back, and what it never lets through.</summary>
public sealed class PreflightGateTests
{
    [Theory]
    [InlineData(FractalRunbooks.Upgrade2170Id)]
    [InlineData(FractalRunbooks.ReleaseId)]
    public void RefuseMarkDone_OnTheFailedPreflight_RefusesAndOnOtherPhasesNot(string runbookId)
    {
        var runbook = FractalRunbooks.All.Single(r => r.Id == runbookId);
        Assert.Equal(PreflightGate.MarkDoneRefusal, PreflightGate.RefuseMarkDone(runbook, new RunPhase { Key = "preflight", State = PhaseState.Failed }));
        Assert.Null(PreflightGate.RefuseMarkDone(runbook, new RunPhase { Key = "backup", State = PhaseState.Failed }));
        // A rollback phase is never a gate, whatever its key.
        Assert.Null(PreflightGate.RefuseMarkDone(runbook, new RunPhase { Key = "preflight", IsRollback = true, State = PhaseState.Failed }));
    }

    [Theory]
    [InlineData(PhaseState.MarkedDone)]
    [InlineData(PhaseState.Skipped)]
    [InlineData(PhaseState.Failed)]
    [InlineData(PhaseState.Pending)]
    [InlineData(PhaseState.Running)]
    public void UnpassedGateBefore_APreflightThatDidNotSucceed_HoldsBackEveryLaterPhaseButNotRollback(PhaseState preflightState)
    {
        var runbook = FractalRunbooks.Upgrade2170;
        var run = RunOf(runbook, preflightState);
        foreach (var phase in run.Phases.Where(p => p.Key != "preflight"))
        {
            Assert.Same(run.Phases[0], PreflightGate.UnpassedGateBefore(run, runbook, phase));
        }

        var rollback = new RunPhase { Index = 99, Key = "rb-env", IsRollback = true };
        run.Phases.Add(rollback);
        Assert.Null(PreflightGate.UnpassedGateBefore(run, runbook, rollback));
        // The preflight itself may always run (again).
        Assert.Null(PreflightGate.UnpassedGateBefore(run, runbook, run.Phases[0]));
    }

    [Fact]
    public void UnpassedGateBefore_APreflightThatSucceeded_HoldsNothingBack()
    {
        var runbook = FractalRunbooks.Upgrade2170;
        var run = RunOf(runbook, PhaseState.Succeeded);
        Assert.All(run.Phases, p => Assert.Null(PreflightGate.UnpassedGateBefore(run, runbook, p)));
    }

    private static Run RunOf(RunbookDefinition runbook, PhaseState preflight) => new()
    {
        RunbookId = runbook.Id,
        Phases = [.. runbook.Phases.Select((p, i) => new RunPhase { Index = i, Key = p.Key, Title = p.Title, State = i == 0 ? preflight : PhaseState.Pending })],
    };
}
