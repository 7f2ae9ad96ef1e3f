namespace UpgradeConsole.Web.Runs;

/// <summary>
/// What the run page asks before an action: the question, whether the audit history needs a reason, and the sentence a
/// person must tick for a phase that is not safe to run twice (null: none).
/// </summary>
public sealed record RunActionRequest(string ActionText, string Message, bool NeedsReason = false, string? Confirmation = null, bool Danger = false);

/// <summary>What the person gave in the confirmation dialog.</summary>
public sealed record RunActionDecision(string? Reason, bool Confirmed);

/// <summary>A checklist item ticked or unticked on the run page, with an optional note.</summary>
public sealed record ChecklistTick(int ItemId, bool Done, string? Note);

/// <summary>
/// A schedule change from the run page's schedule section: <see cref="At"/> is the wall-clock time typed (read in the
/// target's time zone by the page), or null to drop the schedule with an optional audited <see cref="Reason"/>.
/// </summary>
public sealed record ScheduleChange(string? At, string? Reason = null);
