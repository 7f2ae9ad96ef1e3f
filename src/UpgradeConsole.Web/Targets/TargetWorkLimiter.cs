using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace UpgradeConsole.Web.Targets;

/// <summary>How much interactive work (pages, API reads and fixes, preflight, plan) may run on one target at once.</summary>
public sealed class TargetWorkOptions
{
    public const string Section = "UpgradeConsole:TargetWork";

    /// <summary>Sessions on a target at once for people's requests (each is an SSH exchange and, for Fractal, a database forward).</summary>
    public int MaxConcurrent { get; set; } = 4;

    /// <summary>While a run's phase executes on the target, people's requests get this many sessions: the phase comes first.</summary>
    public int MaxConcurrentDuringARun { get; set; } = 1;

    /// <summary>Requests waiting for a session; more are refused at once (503 with Retry-After).</summary>
    public int MaxWaiting { get; set; } = 16;

    /// <summary>How long a request waits for a session before it is refused.</summary>
    public TimeSpan MaxWait { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// How long one read of a target's data (the Fractal users list) answers everyone who asks (<see cref="TargetReads"/>).
    /// Changes made through the dashboard forget it at once.
    /// </summary>
    public TimeSpan ReadCacheFor { get; set; } = TimeSpan.FromSeconds(3);
}

/// <summary>The target is busy with as much interactive work as it may take; the request was not run. Try again later.</summary>
public sealed class TargetBusyException(string message, TimeSpan retryAfter) : InvalidOperationException(message)
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// A bounded queue per target for people's work on it (security finding 3): at most
/// <see cref="TargetWorkOptions.MaxConcurrent"/> sessions at once (fewer while a run's phase executes there; phases never
/// wait here), at most <see cref="TargetWorkOptions.MaxWaiting"/> waiting, the rest refused with a reason instead of piling
/// up until something times out.
/// </summary>
public sealed class TargetWorkLimiter(IOptions<TargetWorkOptions> options) : IDisposable
{
    private readonly ConcurrentDictionary<int, Gate> _gates = new();

    /// <summary>The most sessions that were open at once on the target (what the bound held to).</summary>
    public int PeakConcurrent(int targetId) => _gates.TryGetValue(targetId, out var gate) ? gate.Peak : 0;

    public async Task<IDisposable> EnterAsync(int targetId, string targetName, bool runExecuting, CancellationToken ct)
    {
        var o = options.Value;
        var gate = _gates.GetOrAdd(targetId, _ => new Gate(Math.Max(1, o.MaxConcurrent), Math.Max(1, o.MaxConcurrentDuringARun)));
        if (Interlocked.Increment(ref gate.Waiting) > o.MaxWaiting)
        {
            Interlocked.Decrement(ref gate.Waiting);
            throw Busy(targetName, runExecuting);
        }

        var held = new List<SemaphoreSlim>(2);
        try
        {
            if (!await gate.Sessions.WaitAsync(o.MaxWait, ct))
            {
                throw Busy(targetName, runExecuting);
            }

            held.Add(gate.Sessions);
            if (runExecuting)
            {
                if (!await gate.DuringARun.WaitAsync(o.MaxWait, ct))
                {
                    throw Busy(targetName, runExecuting);
                }

                held.Add(gate.DuringARun);
            }
        }
        catch
        {
            held.ForEach(s => s.Release());
            throw;
        }
        finally
        {
            Interlocked.Decrement(ref gate.Waiting);
        }

        return new Slot(gate, held);
    }

    public void Dispose()
    {
        foreach (var gate in _gates.Values)
        {
            gate.Dispose();
        }
    }

    private static TargetBusyException Busy(string targetName, bool runExecuting) => new(
        runExecuting
            ? $"{targetName} is running an upgrade phase, which comes first; other work on it waits in a short queue, and that queue is full. Try again in a few seconds."
            : $"{targetName} already has as much work from the dashboard as it may take at once. Try again in a few seconds.",
        TimeSpan.FromSeconds(5));

    private sealed class Gate(int sessions, int duringARun) : IDisposable
    {
        public readonly SemaphoreSlim Sessions = new(sessions, sessions);
        public readonly SemaphoreSlim DuringARun = new(duringARun, duringARun);
        private readonly int _capacity = sessions;
        public int Waiting;
        private int _peak;

        public int Peak => Volatile.Read(ref _peak);

        public void Dispose()
        {
            Sessions.Dispose();
            DuringARun.Dispose();
        }

        public void Observe()
        {
            var open = _capacity - Sessions.CurrentCount;
            int seen;
            while (open > (seen = Volatile.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, open, seen) != seen)
            {
            }
        }
    }

    private sealed class Slot : IDisposable
    {
        private List<SemaphoreSlim>? _held;

        public Slot(Gate gate, List<SemaphoreSlim> held)
        {
            _held = held;
            gate.Observe();
        }

        public void Dispose()
        {
            var held = Interlocked.Exchange(ref _held, null);
            held?.ForEach(s => s.Release());
        }
    }
}
