using System.Collections.Concurrent;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Web.Targets;

/// <summary>
/// One forward to each target's database, kept for a short while after its last use (issue 17, item 9): requests in a
/// row reach the database through the same local port, so Npgsql keeps one data source per target (its type information
/// loaded once; before, every request made a forward on a new port and so a new data source, loaded again and never
/// freed), and no forward is set up per request. Only forwards that can say whether they still carry connections
/// (<see cref="IReusablePortForward"/>: SSH.NET's TCP forwards) are kept; any other is the request's own, as before.
/// A kept forward belongs to the target's version and database address: an edited target, a re-pin (its connection is
/// closed), a lost link or another POSTGRES_HOST/PORT gets a new one. Nothing here connects without the caller's
/// shell: every request still opens the target through <see cref="Targets.TargetConnections"/>, with its host-key policy.
/// Each target has a lock of its own: opening a forward over a slow link to one target never holds up another's.
/// </summary>
public sealed class SharedForwards(TimeProvider clock, ILogger<SharedForwards> logger) : IAsyncDisposable
{
    /// <summary>How long a forward nobody uses stays open (a script's next call, a page's next click).</summary>
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(20);

    private readonly ConcurrentDictionary<int, Entry> _entries = new();
    private readonly ConcurrentDictionary<int, SemaphoreSlim> _gates = new();
    private volatile bool _disposed;

    /// <summary>The lock of one target's entry (kept for the dashboard's life: one small object per target).</summary>
    private SemaphoreSlim Gate(int targetId) => _gates.GetOrAdd(targetId, _ => new SemaphoreSlim(1, 1));

    /// <summary>
    /// The target's kept forward to <paramref name="host"/>:<paramref name="port"/> when it is still open, else a new one
    /// made through <paramref name="shell"/> (kept when it can be). Disposing the answer releases it.
    /// </summary>
    public async Task<IPortForward> AcquireAsync(int targetId, Guid version, IRemoteShell shell, string host, int port, CancellationToken ct)
    {
        var gate = Gate(targetId);
        await gate.WaitAsync(ct);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_entries.TryGetValue(targetId, out var kept))
            {
                if (kept.Version == version && kept.Host == host && kept.RemotePort == port && kept.Forward.IsOpen)
                {
                    kept.Users++;
                    kept.Idle?.Dispose();
                    kept.Idle = null;
                    return new Lease(this, kept);
                }

                _entries.TryRemove(targetId, out _);
                kept.Retired = true;
                await CloseIfUnusedAsync(kept);
            }

            var forward = await shell.ForwardAsync(host, port, ct);
            if (forward is not IReusablePortForward reusable)
            {
                return forward;
            }

            var entry = new Entry(targetId, version, host, port, reusable) { Users = 1 };
            _entries[targetId] = entry;
            return new Lease(this, entry);
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Closes the target's kept forward now (its target is removed or its connection closed).</summary>
    public async Task CloseAsync(int targetId)
    {
        var gate = Gate(targetId);
        await gate.WaitAsync();
        try
        {
            if (_entries.TryRemove(targetId, out var kept))
            {
                kept.Retired = true;
                await CloseIfUnusedAsync(kept);
            }
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task ReleaseAsync(Entry entry)
    {
        var gate = Gate(entry.TargetId);
        await gate.WaitAsync();
        try
        {
            entry.Users--;
            if (entry.Retired || _disposed || !entry.Forward.IsOpen)
            {
                _entries.TryRemove(new KeyValuePair<int, Entry>(entry.TargetId, entry));

                entry.Retired = true;
                await CloseIfUnusedAsync(entry);
            }
            else if (entry.Users == 0)
            {
                entry.Idle = clock.CreateTimer(_ => _ = ExpireAsync(entry), null, IdleTimeout, Timeout.InfiniteTimeSpan);
            }
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task ExpireAsync(Entry entry)
    {
        var gate = Gate(entry.TargetId);
        await gate.WaitAsync();
        try
        {
            if (entry.Users == 0 && _entries.TryRemove(new KeyValuePair<int, Entry>(entry.TargetId, entry)))
            {
                entry.Retired = true;
                await CloseIfUnusedAsync(entry);
            }
        }
        catch (Exception ex)
        {
            // A timer's callback: nobody awaits it, so say it here. The listener is gone with its connection anyway.
            logger.LogWarning(ex, "Closing the idle forward of target {TargetId} failed", entry.TargetId);
        }
        finally
        {
            gate.Release();
        }
    }

    private static async Task CloseIfUnusedAsync(Entry entry)
    {
        if (entry.Users > 0 || entry.Closed)
        {
            return;
        }

        entry.Closed = true;
        entry.Idle?.Dispose();
        await entry.Forward.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        // From now on nothing new is kept (an acquire under way still hands out its forward, released at once).
        _disposed = true;
        foreach (var targetId in _gates.Keys)
        {
            await CloseAsync(targetId);
        }
    }

    private sealed class Entry(int targetId, Guid version, string host, int remotePort, IReusablePortForward forward)
    {
        public int TargetId { get; } = targetId;

        public Guid Version { get; } = version;

        public string Host { get; } = host;

        public int RemotePort { get; } = remotePort;

        public IReusablePortForward Forward { get; } = forward;

        public int Users { get; set; }

        public ITimer? Idle { get; set; }

        /// <summary>No longer handed out: closed when its last user releases it.</summary>
        public bool Retired { get; set; }

        public bool Closed { get; set; }
    }

    /// <summary>One request's use of a kept forward; disposing it releases the use, not the forward.</summary>
    private sealed class Lease(SharedForwards owner, Entry entry) : IPortForward
    {
        private int _released;

        public string Host => entry.Forward.Host;

        public int Port => entry.Forward.Port;

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                await owner.ReleaseAsync(entry);
            }
        }
    }
}
