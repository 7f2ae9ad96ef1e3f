using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Runbooks;

public enum PhaseKind
{
    /// <summary>Done by the dashboard itself (checks, file edits through the connection, database queries).</summary>
    Builtin,

    /// <summary>A script started detached on the target and followed by the remote engine.</summary>
    Remote,

    /// <summary>People tick a checklist.</summary>
    Manual,
}

/// <summary>
/// Where a phase's execution runs. Today every phase runs on "the target" (one connection); a product
/// with many hosts per target (Backend.AI agents) will add a fan-out scope here, not a new switch.
/// </summary>
public enum PhaseScope
{
    Target,
}

/// <summary>What a phase does when it runs; the driver interprets the three kinds, never the phase's key.</summary>
public abstract record PhaseExecution(PhaseKind Kind)
{
    /// <summary>A script started detached on the target through the remote step engine (start marker, offsets, reattach).</summary>
    public static PhaseExecution Remote(Func<PhaseContext, Task<RemoteScript>> script) => new RemoteExecution(script);

    /// <summary>A script that needs nothing but the phase's context to be written.</summary>
    public static PhaseExecution Remote(Func<PhaseContext, RemoteScript> script) => new RemoteExecution(c => Task.FromResult(script(c)));

    /// <summary>Work the dashboard does itself through the target's connection or database.</summary>
    public static PhaseExecution Builtin(Func<PhaseContext, Task<PhaseOutcome>> run) => new BuiltinExecution(run);

    /// <summary>People tick the runbook's checklist; the run waits for them.</summary>
    public static PhaseExecution Manual { get; } = new ManualExecution();
}

public sealed record RemoteExecution(Func<PhaseContext, Task<RemoteScript>> Script) : PhaseExecution(PhaseKind.Remote);

public sealed record BuiltinExecution(Func<PhaseContext, Task<PhaseOutcome>> Run) : PhaseExecution(PhaseKind.Builtin);

public sealed record ManualExecution() : PhaseExecution(PhaseKind.Manual);

/// <summary>
/// A script for the remote engine. Secrets travel in <see cref="Environment"/>, never in the text.
/// <see cref="OnLine"/> sees every line as it is stored; <see cref="Succeeded"/> turns an exit code 0
/// into the phase's outcome (recording what the script reported). <see cref="Refusal"/> instead of a
/// script: the phase fails with that message and nothing starts.
/// </summary>
public sealed record RemoteScript(string Script, IReadOnlyDictionary<string, string>? Environment = null)
{
    public Action<string>? OnLine { get; init; }

    public Func<Task<PhaseOutcome>>? Succeeded { get; init; }

    public string? Refusal { get; init; }

    public static RemoteScript Refused(string message) => new("") { Refusal = message };
}

/// <summary>
/// Something the rollback runs, as a phase of its own appended to the run. Shared by the phases it
/// undoes (one "stop" for both the stop and the start phase); the runbook orders them.
/// </summary>
public sealed record RollbackAction(string Key, Func<RollbackInputs, string> Title, PhaseExecution Execution, TimeSpan Timeout)
{
    /// <summary>Why this action cannot be planned for the run (it would have nothing to work from), or null.</summary>
    public Func<RollbackInputs, string?> Refuse { get; init; } = _ => null;
}

/// <summary>What a rollback action's title and precondition may look at.</summary>
public sealed record RollbackInputs(string FromVersion, string ToVersion, string? BackupPath);

/// <summary>
/// One phase of a runbook: what it is called and why it exists, the exact commands the plan shows,
/// what it does when it runs, how long it may take, whether it may run again after an unknown
/// outcome, whether it is the point of no return, what undoes it and which preflight checks it needs.
/// A <see cref="Gate"/> phase (the preflight) must pass for any later phase to run: it is never
/// marked done; only an Admin's override of each failing check, with a reason, lets it pass.
/// </summary>
public sealed record PhaseDefinition(string Key, string Title, string Description, PhaseExecution Execution)
{
    public PhaseKind Kind => Execution.Kind;

    /// <summary>May it run again after an outcome nobody knows (the step lost its exit code)? If not, a person decides.</summary>
    public required bool Idempotent { get; init; }

    public bool PointOfNoReturn { get; init; }

    /// <summary>How long the remote step may run before the engine stops it.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>The plan's commands for this phase, secrets masked; null when there is nothing to show.</summary>
    public Func<PlanInputs, string?> Preview { get; init; } = _ => null;

    /// <summary>What the rollback does about this phase, in words (the plan shows it).</summary>
    public string? RollbackText { get; init; }

    /// <summary>The actions that undo this phase once it has started (run in the runbook's rollback order).</summary>
    public IReadOnlyList<RollbackAction> Rollback { get; init; } = [];

    /// <summary>Chosen on the plan (skipped unless chosen).</summary>
    public bool Optional { get; init; }

    public bool Gate { get; init; }

    /// <summary>The preflight checks that must pass (or be overridden) for this phase; <see cref="CheckRequirement.All"/> for every one.</summary>
    public CheckRequirement RequiredChecks { get; init; } = CheckRequirement.None;

    /// <summary>Whether this phase migrates the product's data (the API tells clients a runbook has one).</summary>
    public bool MigratesData { get; init; }

    public PhaseScope Scope { get; init; } = PhaseScope.Target;

    /// <summary>
    /// How this phase runs in a rehearsal, against the rehearsal's scratch copy (database, environment, files);
    /// null: the phase is not rehearsed (it would touch the service, the installed package or the env file).
    /// </summary>
    public PhaseExecution? Rehearse { get; init; }

    /// <summary>Runs also after an earlier phase of the run failed (a rehearsal's cleanup); the run still ends failed.</summary>
    public bool Finally { get; init; }
}

/// <summary>The preflight checks a phase needs: none, some named ones, or every check the product has.</summary>
public sealed record CheckRequirement(bool Every, IReadOnlySet<string> Ids)
{
    public static CheckRequirement None { get; } = new(false, new HashSet<string>(StringComparer.Ordinal));

    public static CheckRequirement All { get; } = new(true, new HashSet<string>(StringComparer.Ordinal));

    public static CheckRequirement Of(params string[] ids) => new(false, new HashSet<string>(ids, StringComparer.Ordinal));

    public bool Contains(string checkId) => Every || Ids.Contains(checkId);
}

/// <summary>An ordered list of phases that upgrades a product from one version to another.</summary>
public sealed record RunbookDefinition(string Id, string Title, string Product, IReadOnlyList<PhaseDefinition> Phases, IReadOnlyList<string> Checklist)
{
    /// <summary>The order in which the rollback runs its actions (each only when a phase it undoes has started).</summary>
    public IReadOnlyList<RollbackAction> RollbackOrder { get; init; } = [];

    /// <summary>The only version this runbook goes to (null: the plan asks for one).</summary>
    public string? FixedToVersion { get; init; }

    /// <summary>Whether the plan page offers to plan a version further than one hop away as a chain of runs (ADR 0028).</summary>
    public bool PlansChains { get; init; }

    /// <summary>Whether the plan asks which OAuth client to keep (several 2.16 clients become one).</summary>
    public bool AsksForOAuthClient { get; init; }

    public int PointOfNoReturnIndex => Phases.ToList().FindIndex(p => p.PointOfNoReturn);

    public bool HasDataMigration => Phases.Any(p => p.MigratesData);

    /// <summary>
    /// Preflight checks no override lets through on this runbook (Backend.AI's major upgrade: running compute sessions).
    /// The plan, the run's override and the preflight phase itself refuse an override of these.
    /// </summary>
    public IReadOnlySet<string> NeverOverridden { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Why an override of <paramref name="checkId"/> is refused on this runbook, or null.</summary>
    public string? RefuseOverride(string checkId) => NeverOverridden.Contains(checkId)
        ? $"The check '{checkId}' cannot be overridden on {Title}: fix what it reports and run the preflight again."
        : null;

    /// <summary>Whether a failing preflight check stops this runbook: some phase of it requires the check.</summary>
    public bool Requires(string checkId) => Phases.Any(p => p.RequiredChecks.Contains(checkId));

    public PhaseDefinition? Phase(string key) => Phases.FirstOrDefault(p => p.Key == key);

    /// <summary>The runbook's phase or rollback action behind a phase of a run.</summary>
    public (PhaseExecution Execution, TimeSpan Timeout, bool Idempotent)? ExecutionOf(RunPhase phase)
    {
        if (phase.IsRollback)
        {
            return RollbackOrder.FirstOrDefault(a => a.Key == phase.Key) is { } action ? (action.Execution, action.Timeout, true) : null;
        }

        return Phase(phase.Key) is { } definition ? (definition.Execution, definition.Timeout, definition.Idempotent) : null;
    }

    /// <summary>How the product rehearses this runbook on a copy (null: it cannot be rehearsed).</summary>
    public RehearsalDefinition? Rehearsal { get; init; }

    /// <summary>For a rehearsal runbook (<see cref="RehearsalRunbooks"/>): the id of the runbook it rehearses.</summary>
    public string? RehearsalOf { get; init; }

    public bool IsRehearsal => RehearsalOf is not null;

    /// <summary>The manual phase whose completion is the checklist's, if any.</summary>
    public PhaseDefinition? ChecklistPhase => Phases.FirstOrDefault(p => p.Kind == PhaseKind.Manual);
}
