using UpgradeConsole.Core.Runbooks;

namespace UpgradeConsole.Web.Runs;

/// <summary>
/// The one rule that keeps a run behind its preflight: a gate phase (the preflight) passes only by
/// running to success — with an Admin's written override for each failing check it names — and never
/// by "mark done". The run service applies it to people's actions, the driver before every phase.
/// </summary>
public static class PreflightGate
{
    public const string MarkDoneRefusal =
        "A failed preflight is never marked done: fix what fails and retry it, or an Admin overrides each failing check with a written reason.";

    public const string OverrideNeedsAdmin = "Only an Admin may override a failing preflight check.";

    /// <summary>Whether the phase is a gate of its runbook.</summary>
    public static bool IsGate(RunbookDefinition? runbook, RunPhase phase) =>
        !phase.IsRollback && runbook?.Phases.FirstOrDefault(p => p.Key == phase.Key) is { Gate: true };

    /// <summary>Why <paramref name="phase"/> may not be marked done, or null.</summary>
    public static string? RefuseMarkDone(RunbookDefinition? runbook, RunPhase phase) =>
        IsGate(runbook, phase) ? MarkDoneRefusal : null;

    /// <summary>
    /// The gate before <paramref name="phase"/> that has not passed by running, or null. Rollback
    /// phases are never held back: undoing a change needs no preflight.
    /// </summary>
    public static RunPhase? UnpassedGateBefore(Run run, RunbookDefinition runbook, RunPhase phase) =>
        phase.IsRollback
            ? null
            : run.Phases.Where(p => p.Index < phase.Index && IsGate(runbook, p) && p.State != PhaseState.Succeeded).OrderBy(p => p.Index).FirstOrDefault();
}
