using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Runs;

/// <summary>
/// Where each run's first error line is, so the run page's "first error" does not scan a long log's
/// chunks on every click. Each chunk records its own first error when it is stored
/// (<see cref="RunLogChunk.FirstErrorSequence"/>); this node remembers, per run, how far it has looked
/// and what it found. A log only grows at its end (chunks are appended in sequence order and never
/// rewritten), so once a first error is found it stays the answer, and a later look starts where the
/// last one stopped. The run's writer on this node keeps its run's entry current as it stores chunks,
/// so a run written here never needs a scan at all; a run written by another node (or before a restart)
/// is scanned once, then only its new chunks. A cache, not a record: lost on restart, bounded in size.
/// </summary>
public sealed class RunLogFirstErrors
{
    /// <summary>Runs remembered at most; beyond it the cache starts again (a look costs one scan again).</summary>
    internal const int MaxRuns = 4096;

    private readonly Lock _gate = new();
    private readonly Dictionary<int, Entry> _runs = [];

    /// <summary>Lines 1…<paramref name="LookedThrough"/> were looked at; the first error among them, if any.</summary>
    private readonly record struct Entry(long LookedThrough, long? FirstError);

    /// <summary>
    /// The sequence of the run's first line that reads like an error, or null. Reads at most the chunks
    /// stored since this node last looked, and only their small columns.
    /// </summary>
    public async Task<long?> FindAsync(AppDbContext db, int runId, CancellationToken ct)
    {
        Entry known;
        lock (_gate)
        {
            known = _runs.GetValueOrDefault(runId);
        }

        if (known.FirstError is { } found)
        {
            return found;
        }

        // The end first: a chunk committed after this statement is looked at next time, never skipped.
        var end = await db.RunLogChunks.Where(c => c.RunId == runId).MaxAsync(c => (long?)c.LastSequence, ct) ?? 0;
        if (end <= known.LookedThrough)
        {
            return null;
        }

        var first = await db.RunLogChunks.AsNoTracking()
            .Where(c => c.RunId == runId && c.FirstSequence > known.LookedThrough && c.FirstSequence <= end && c.FirstErrorSequence != null)
            .OrderBy(c => c.FirstSequence)
            .Select(c => c.FirstErrorSequence)
            .FirstOrDefaultAsync(ct);
        Remember(runId, new Entry(end, first));
        return first;
    }

    /// <summary>
    /// A writer stored lines <paramref name="storedBefore"/>+1…<paramref name="last"/> of the run (committed),
    /// the first of them that reads like an error being <paramref name="firstError"/>. Keeps the run's entry
    /// current when it covered everything before them, or starts one for a log that was empty.
    /// </summary>
    public void Stored(int runId, long storedBefore, long last, long? firstError)
    {
        lock (_gate)
        {
            var has = _runs.TryGetValue(runId, out var known);
            if (has && known.FirstError is not null)
            {
                return;
            }

            var coversBefore = has ? known.LookedThrough >= storedBefore : storedBefore == 0;
            if (coversBefore)
            {
                Put(runId, new Entry(Math.Max(known.LookedThrough, last), firstError));
            }
        }
    }

    private void Remember(int runId, Entry found)
    {
        lock (_gate)
        {
            // Another look or a writer may have moved on meanwhile: keep whichever knows more. Both are true:
            // the look started from an entry with no error up to its point, and scanned every chunk after it.
            var current = _runs.GetValueOrDefault(runId);
            if (current.FirstError is not null || current.LookedThrough > found.LookedThrough)
            {
                return;
            }

            Put(runId, found);
        }
    }

    private void Put(int runId, Entry entry)
    {
        if (_runs.Count >= MaxRuns && !_runs.ContainsKey(runId))
        {
            _runs.Clear();
        }

        _runs[runId] = entry;
    }
}
