using System.Collections.Concurrent;

namespace UpgradeConsole.Web.Runs;

/// <summary>
/// "Something was stored for this run": pulsed on this node when log lines of a run are committed (by its own writer, or
/// announced by another node through <see cref="RunLogRelay"/>). Event streams wait on it instead of polling the database.
/// </summary>
public sealed class RunActivity
{
    private readonly ConcurrentDictionary<int, TaskCompletionSource> _waiting = new();

    public void Pulse(int runId)
    {
        if (_waiting.TryRemove(runId, out var waiting))
        {
            waiting.TrySetResult();
        }
    }

    /// <summary>
    /// The next <see cref="Pulse"/> of the run. Take it <em>before</em> reading what is stored, then wait on it with
    /// <see cref="WaitAsync"/>: a pulse in between is not missed.
    /// </summary>
    public Task Next(int runId) =>
        _waiting.GetOrAdd(runId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    /// <summary>Completes when <paramref name="next"/> does, or after <paramref name="timeout"/>, whichever is first.</summary>
    public static async Task WaitAsync(Task next, TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            await next.WaitAsync(timeout, ct);
        }
        catch (TimeoutException)
        {
            // Nothing stored meanwhile: the caller looks at the run's state anyway.
        }
    }
}
