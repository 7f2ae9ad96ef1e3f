namespace UpgradeConsole.Core.Audit;

/// <summary>The result of walking the whole audit chain.</summary>
/// <param name="Events">How many events were checked (up to and including the first broken one).</param>
/// <param name="HeadHash">The last event's hash when the chain holds: note it somewhere else to detect a truncated tail later.</param>
/// <param name="BrokenAt">The sequence of the first event that breaks the chain, or null.</param>
/// <param name="Problem">Why that event breaks it.</param>
/// <param name="Walked">How many events this verification read and re-hashed: all of them for a full one, only those after the
/// last verified checkpoint (plus the checkpoint itself) for an incremental one.</param>
public sealed record AuditVerification(long Events, string HeadHash, long? BrokenAt, string? Problem, long Walked = 0)
{
    public bool Holds => BrokenAt is null;

    public override string ToString() => Holds
        ? Walked > 0 && Walked < Events
            ? $"The audit chain holds: {Events} event(s), head hash {HeadHash}; checked the {Walked - 1} new since the last verification (the whole chain is walked daily and by Admins)."
            : $"The audit chain holds: {Events} event(s), head hash {HeadHash}."
        : $"The audit chain is broken at event {BrokenAt}: {Problem}.";
}
