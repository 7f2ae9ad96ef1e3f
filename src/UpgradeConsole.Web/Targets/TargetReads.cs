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
    /// Raised (on a pool thread) when a result given out past its time (<c>orOlderUpTo</c>) has been read again in the
    /// background and the new result is in place: a page that showed the older one asks again to show the new one.
    /// </summary>
    public event Action<int, string>? Refreshed;

    /// <summary>
    /// The shared result of <paramref name="read"/> for this target and key. The read itself is not cancelled when one
    /// caller gives up (others may be waiting for it); it has its own time limits. A caller that passes
    /// <paramref name="orOlderUpTo"/> (a page that shows what it got and follows <see cref="Refreshed"/>) is answered at
    /// once with a result past <see cref="TargetWorkOptions.ReadCacheFor"/> but younger than that, while one read in the
    /// background replaces it; everyone else waits for a result within its time, as before.
    /// </summary>
    public async Task<T> SharedAsync<T>(int targetId, string what, Func<CancellationToken, Task<T>> read, CancellationToken ct, TimeSpan? orOlderUpTo = null)
        where T : class
    {
        var key = (targetId, what);
        while (true)
        {
            var entry = _entries.GetOrAdd(key, _ => new Entry(this, async () => await read(CancellationToken.None)));
            var task = entry.Task.Value;
            var age = entry.Finished is { } finished ? _clock.GetUtcNow() - finished : TimeSpan.Zero;
            if (task.IsFaulted || task.IsCanceled || age > options.Value.ReadCacheFor)
            {
                if (task.IsCompletedSuccessfully && age <= orOlderUpTo)
                {
                    RefreshInBackground(key, entry, read);
                    return (T)task.Result;
                }

                // Failures are not shared after the fact, and a result past its time is read again.
                _entries.TryRemove(new KeyValuePair<(int, string), Entry>(key, entry));
                continue;
            }

            return (T)await task.WaitAsync(ct);
        }
    }

    private void RefreshInBackground<T>((int Target, string What) key, Entry stale, Func<CancellationToken, Task<T>> read)
        where T : class
    {
        if (Interlocked.Exchange(ref stale.Refreshing, 1) == 1)
        {
            return;
        }

        var next = new Entry(this, async () => await read(CancellationToken.None));
        _ = next.Task.Value.ContinueWith(done =>
        {
            // A change through the dashboard (Forget) or a caller that could not wait may have replaced the entry
            // meanwhile: then this result is not put in place, and nobody is told.
            if (done.IsCompletedSuccessfully && _entries.TryUpdate(key, next, stale))
            {
                Refreshed?.Invoke(key.Target, key.What);
            }
            else
            {
                Volatile.Write(ref stale.Refreshing, 0);
            }
        }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
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

        /// <summary>1 while a read in the background replaces this result.</summary>
        public int Refreshing;
    }
}
