using System.Runtime.CompilerServices;

namespace UpgradeConsole.Web.Runbooks;

/// <summary>
/// What a product adds to a runbook to rehearse it on a copy: the phases that make the copy (a verified dump,
/// a scratch database restored from it, a scratch environment and configuration pointing at it), the phases
/// that report after the rehearsed ones (Fractal: the data migration compared with the plan's prediction),
/// and the cleanup that removes the copy, which runs also after a failure (<see cref="PhaseDefinition.Finally"/>).
/// Between them run the runbook's own phases that declare <see cref="PhaseDefinition.Rehearse"/>.
/// </summary>
public sealed record RehearsalDefinition(IReadOnlyList<PhaseDefinition> Before, IReadOnlyList<PhaseDefinition> After, PhaseDefinition Cleanup);

/// <summary>
/// The rehearsal of a runbook is a runbook of its own (id <c>&lt;runbook&gt;+rehearsal</c>): a run of it is a
/// rehearsal, listed and audited like any run, driven by the same driver. It never holds the target's one
/// active-run slot: it changes nothing of production, and a planned real run waits beside it.
/// </summary>
public static class RehearsalRunbooks
{
    public const string Suffix = "+rehearsal";

    private static readonly ConditionalWeakTable<RunbookDefinition, RunbookDefinition> Built = [];

    /// <summary>The rehearsal runbook of <paramref name="runbook"/>, or null when its product does not rehearse it.</summary>
    public static RunbookDefinition? Of(RunbookDefinition runbook) =>
        runbook.Rehearsal is null || runbook.IsRehearsal ? null : Built.GetValue(runbook, Build);

    private static RunbookDefinition Build(RunbookDefinition runbook)
    {
        var rehearsal = runbook.Rehearsal!;
        var rehearsed = runbook.Phases.Where(p => p.Rehearse is not null).Select(p => p with
        {
            Title = p.Title + " (rehearsed)",
            Execution = p.Rehearse!,
            Rehearse = null,
            PointOfNoReturn = false,
            Gate = false,
            Rollback = [],
            RollbackText = "Nothing to undo: it ran against the scratch copy.",
            RequiredChecks = CheckRequirement.None,
            Preview = _ => "the same step, in the rehearsal's scratch directory and environment, against the scratch database",
        });
        return new RunbookDefinition(
            runbook.Id + Suffix,
            "Rehearsal: " + runbook.Title,
            runbook.Product,
            [.. rehearsal.Before, .. rehearsed, .. rehearsal.After, rehearsal.Cleanup with { Finally = true }],
            [])
        {
            RehearsalOf = runbook.Id,
            FixedToVersion = runbook.FixedToVersion,
            AsksForOAuthClient = runbook.AsksForOAuthClient,
        };
    }
}
