using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Runbooks;

namespace UpgradeConsole.Web.Runs;

/// <summary>Runs a phase's execution as its runbook declares it: a remote script through the engine, or a builtin step.</summary>
public static class PhaseRunner
{
    public static async Task<PhaseOutcome> RunAsync(PhaseContext c, PhaseExecution execution, TimeSpan timeout, bool idempotent) => execution switch
    {
        RemoteExecution remote => await RemoteAsync(c, await remote.Script(c), timeout, idempotent),
        BuiltinExecution builtin when c.Runbook.IsRehearsal => await LimitedAsync(c, builtin, timeout),
        BuiltinExecution builtin => await builtin.Run(c),
        _ => PhaseOutcome.Failed($"No execution for phase {c.Phase.Key}."),
    };

    /// <summary>
    /// A rehearsal's builtin phase (the compare) held to its declared time limit, as remote steps are: a rehearsal never
    /// waits forever on a read, it fails saying so and its cleanup runs. (A real run's builtins are not limited yet:
    /// their declared limits were never enforced, and env-write must not be stopped halfway.)
    /// </summary>
    private static async Task<PhaseOutcome> LimitedAsync(PhaseContext c, BuiltinExecution builtin, TimeSpan timeout)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(c.Cancellation);
        using var timer = c.Clock.CreateTimer(_ => limit.Cancel(), null, timeout, Timeout.InfiniteTimeSpan);
        try
        {
            return await builtin.Run(c.WithCancellation(limit.Token));
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !c.Cancellation.IsCancellationRequested)
        {
            return PhaseOutcome.Failed($"timed out after {timeout}");
        }
    }

    /// <summary>
    /// Runs a script as a detached remote step of this phase's attempt, or reattaches to it after a
    /// restart, storing every line with its offset. The step's start marker on the target keeps a second
    /// start from happening. A lost step of a non-idempotent phase needs a person.
    /// </summary>
    private static async Task<PhaseOutcome> RemoteAsync(PhaseContext c, RemoteScript script, TimeSpan timeout, bool idempotent)
    {
        if (script.Refusal is { } refusal)
        {
            return PhaseOutcome.Failed(refusal);
        }

        var (run, phase, target, ct) = (c.Run, c.Phase, c.Target, c.Cancellation);
        var location = new StepLocation(target.RunsDirectory, run.RemoteRunId, phase.StepId ?? $"{phase.Index:00}-{phase.Key}-a{phase.Attempt}");
        if (phase.StepId is null)
        {
            phase.StepId = location.StepId;
            phase.LogOffset = 0;
            await c.Db.SaveChangesAsync(ct);
        }

        var status = await c.Engine.GetStatusAsync(location, ct);
        if (status.State == RemoteStepState.NotStarted)
        {
            await c.Engine.StartAsync(new RemoteStep
            {
                Location = location,
                Script = script.Script,
                Environment = script.Environment ?? new Dictionary<string, string>(),
                Timeout = timeout,
                RunAsUser = target.ServiceUser,
            }, ct);
        }

        if (script.OnLine is { } onLine && phase.LogOffset > 0)
        {
            // Taken over after an interruption: the lines stored before it were seen by another process (or
            // not at all, if it died right after storing them). What the phase learns from its output comes
            // from the step's log on the target, the same bytes as the stored lines, read again up to the
            // stored offset; never only from lines seen live.
            await foreach (var line in c.Engine.FollowAsync(location, 0, ct))
            {
                if (line.NextOffset > phase.LogOffset)
                {
                    break;
                }

                onLine(line.Text);
                if (line.NextOffset == phase.LogOffset)
                {
                    break;
                }
            }
        }

        await RunLogPump.PumpAsync(c.Engine, location, phase, c.Log, script.OnLine, ct);
        status = await c.Engine.GetStatusAsync(location, ct);
        return status.State switch
        {
            RemoteStepState.Exited when status.ExitCode == 0 => script.Succeeded is { } succeeded ? await succeeded() : PhaseOutcome.Done(),
            RemoteStepState.Exited => PhaseOutcome.Failed(status.TimedOut ? $"timed out after {timeout}" : status.Cancelled ? "cancelled" : $"the step exited with {status.ExitCode}", status.ExitCode),
            _ when idempotent => PhaseOutcome.Failed("The step ended without an exit code (the host restarted, or it was killed)."),
            _ => new PhaseOutcome(PhaseState.NeedsAttention, "The step ended without an exit code, so whether it completed is unknown. It is never re-run automatically: check the target, then retry, mark it done or roll back."),
        };
    }
}
