using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Runbooks;

/// <summary>
/// A product's connection to one target for one phase: the shell, the secrets to mask, and whatever
/// else the product opened (Fractal: its env file and a forward to its database). Disposed when the phase ends.
/// </summary>
public interface IProductSession : IAsyncDisposable
{
    IRemoteShell Shell { get; }

    /// <summary>Values never to show in the log (passwords, secrets, tokens the product knows of).</summary>
    IReadOnlyCollection<string> Secrets { get; }
}

/// <summary>
/// What a phase's preview sees: the target, the versions, and the facts the product gathered for the
/// plan (<see cref="Facts"/>, the product's own type).
/// </summary>
public sealed record PlanInputs(Target Target, string? FromVersion, string ToVersion, object Facts)
{
    /// <summary>The product's plan facts (only the product's own phases ask, with the product's own type).</summary>
    public T FactsAs<T>() where T : class => Facts as T ?? throw new InvalidOperationException($"The plan's facts are not {typeof(T).Name}.");
}

/// <summary>Everything a phase's execution works with, for one attempt of one phase of one run.</summary>
public sealed class PhaseContext(
    Run run,
    RunPhase phase,
    RunbookDefinition runbook,
    Target target,
    IProductSession session,
    IProductRuntime product,
    RemoteStepEngine engine,
    RunLogWriter log,
    AppDbContext db,
    bool recovering,
    CancellationToken ct)
{
    public Run Run => run;

    public RunPhase Phase => phase;

    public RunbookDefinition Runbook => runbook;

    public Target Target => target;

    public IProductSession Session => session;

    /// <summary>The product's services (its preflight, for the gate phase).</summary>
    public IProductRuntime Product => product;

    public IRemoteShell Shell => session.Shell;

    public RemoteStepEngine Engine => engine;

    public RunLogWriter Log => log;

    public AppDbContext Db => db;

    /// <summary>The phase was already running when this attempt took it over (a restart, another node).</summary>
    public bool Recovering => recovering;

    public CancellationToken Cancellation => ct;

    /// <summary>The same context whose work stops with <paramref name="token"/> (a phase held to its time limit).</summary>
    public PhaseContext WithCancellation(CancellationToken token) =>
        new(run, phase, runbook, target, session, product, engine, log, db, recovering, token) { AttemptStartedAt = AttemptStartedAt, Clock = Clock };

    /// <summary>The product's own session type (only the product's own phases ask).</summary>
    public T SessionAs<T>() where T : class, IProductSession => session as T ?? throw new InvalidOperationException($"The phase's session is not {typeof(T).Name}.");

    /// <summary>When this attempt of the phase began (its header was stored), if known.</summary>
    public DateTimeOffset? AttemptStartedAt { get; init; }

    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>
    /// A line in the run's log from the dashboard, under this phase, stored before this returns: what a
    /// builtin phase says before it changes something is in the log even if the dashboard dies right after.
    /// </summary>
    public async Task WriteAsync(string line)
    {
        await log.WriteAsync(phase, line, ct: ct);
        await log.FlushAsync(ct);
    }

    /// <summary>Records what the phase learned on the run (its checkpoint).</summary>
    public Task SaveAsync() => db.SaveChangesAsync(ct);
}
