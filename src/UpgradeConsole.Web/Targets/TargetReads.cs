using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace UpgradeConsole.Web.Targets;

/// <summary>
/// One read of a target's data shared by everyone who asks for it at about the same time (security finding 3): callers
/// that arrive while a read of the same thing is under way wait for that read instead of starting their own, and its
/// result answers for <see cref="TargetWorkOptions.ReadCacheFor"/> after it ended. Any change made through the dashboard
/// forgets the target's reads at once (<see cref="Forget"/>), so a person never sees their own fix undone; changes made
/// on the host by someone else show within that short time.
/// </summary>
public sealed class TargetReads(IOptions<TargetWorkOptions> options, TimeProvider clock)
{
    private readonly ConcurrentDictionary<(int Target, string What), Entry> _entries = new();
    private readonly TimeProvider _clock = clock;
    private long _performed;

    /// <summary>How many reads actually went to targets (the rest were shared).</summary>
    public long Performed => Interlocked.Read(ref _performed);

    /// <summary>
    /// The shared result of <paramref name="read"/> for this target and key. The read itself is not cancelled when one
    /// caller gives up (others may be waiting for it); it has its own time limits.
    /// </summary>
    public async Task<T> SharedAsync<T>(int targetId, string what, Func<CancellationToken, Task<T>> read, CancellationToken ct)
        where T : class
    {
        var key = (targetId, what);
        while (true)
        {
            var entry = _entries.GetOrAdd(key, _ => new Entry(this, async () => await read(CancellationToken.None)));
            var task = entry.Task.Value;
            if (task.IsFaulted || task.IsCanceled || entry.Finished is { } finished && _clock.GetUtcNow() - finished > options.Value.ReadCacheFor)
            {
                // Failures are not shared after the fact, and a result past its time is read again.
                _entries.TryRemove(new KeyValuePair<(int, string), Entry>(key, entry));
                continue;
            }

            return (T)await task.WaitAsync(ct);
        }
    }

    /// <summary>Forgets every read of the target: called when the dashboard changes something there.</summary>
    public void Forget(int targetId)
    {
        foreach (var key in _entries.Keys.Where(k => k.Target == targetId))
        {
            _entries.TryRemove(key, out _);
        }
    }

    private sealed class Entry
    {
        public Entry(TargetReads owner, Func<Task<object>> read) =>
            Task = new(() =>
            {
                Interlocked.Increment(ref owner._performed);
                return System.Threading.Tasks.Task.Run(async () =>
                {
                    try
                    {
                        return await read();
                    }
                    finally
                    {
                        Finished = owner._clock.GetUtcNow();
                    }
                });
            }, LazyThreadSafetyMode.ExecutionAndPublication);

        /// <summary>Started once, by the first caller that finds the entry (GetOrAdd may build an entry it then drops).</summary>
        public Lazy<Task<object>> Task { get; }

        public DateTimeOffset? Finished { get; private set; }
    }
}
