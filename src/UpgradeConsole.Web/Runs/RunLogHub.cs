using System.Linq.Expressions;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Runs;

/// <summary>One stored log line as viewers receive it (already masked).</summary>
public sealed record LogLine(long Sequence, int Phase, DateTimeOffset At, string Text)
{
    /// <summary>The projection from the stored row (translated to SQL in queries).</summary>
    public static readonly Expression<Func<RunLogLine, LogLine>> FromStored = l => new LogLine(l.Sequence, l.PhaseIndex, l.At, l.Text);

    public static readonly Func<RunLogLine, LogLine> Of = FromStored.Compile();
}

/// <summary>What the server calls on a viewer.</summary>
public interface IRunLogClient
{
    /// <summary>Lines just stored for <paramref name="runId"/>, in sequence order (a batch may overlap what the viewer has).</summary>
    Task Lines(int runId, IReadOnlyList<LogLine> lines);
}

/// <summary>
/// Live run logs, one group per run. The protocol makes gaps and duplicates impossible for a viewer
/// that follows it: <see cref="Join"/> with the last sequence it has (0 for none) returns what it
/// lacks and subscribes it; pushed batches carry sequence numbers, so the viewer drops what it has
/// and, on a gap, asks <see cref="Fetch"/> for the missing range. A viewer that reconnects joins
/// again with its last sequence.
/// </summary>
[Authorize(Policy = Policies.View)]
public sealed class RunLogHub(AppDbContext db) : Hub<IRunLogClient>
{
    public const string Path = "/hubs/run-log";
    public const int MaxBatch = 5000;

    public static string Group(int runId) => $"run-{runId}";

    /// <summary>Subscribes to the run and returns up to <see cref="MaxBatch"/> lines after <paramref name="after"/> (call <see cref="Fetch"/> for more).</summary>
    public async Task<IReadOnlyList<LogLine>> Join(int runId, long after)
    {
        // Every role may view every run; the run must exist.
        if (!await db.Runs.AnyAsync(r => r.Id == runId, Context.ConnectionAborted))
        {
            throw new HubException($"There is no run {runId}.");
        }

        await Groups.AddToGroupAsync(Context.ConnectionId, Group(runId), Context.ConnectionAborted);
        return await Fetch(runId, after);
    }

    /// <summary>Lines after <paramref name="after"/>, oldest first, at most <see cref="MaxBatch"/>.</summary>
    public async Task<IReadOnlyList<LogLine>> Fetch(int runId, long after) =>
        await LinesAsync(db, runId, after, long.MaxValue, Context.ConnectionAborted);

    /// <summary>A run's lines after <paramref name="after"/> up to <paramref name="upTo"/>, oldest first, at most <see cref="MaxBatch"/>.</summary>
    public static Task<List<LogLine>> LinesAsync(AppDbContext db, int runId, long after, long upTo, CancellationToken ct) =>
        db.RunLogLines.AsNoTracking()
            .Where(l => l.RunId == runId && l.Sequence > after && l.Sequence <= upTo)
            .OrderBy(l => l.Sequence)
            .Take(MaxBatch)
            .Select(LogLine.FromStored)
            .ToListAsync(ct);

    /// <summary>A run's lines after <paramref name="after"/> up to <paramref name="last"/>, page by page.</summary>
    public static async IAsyncEnumerable<List<LogLine>> PagesAsync(AppDbContext db, int runId, long after, long last, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        while (after < last)
        {
            var page = await LinesAsync(db, runId, after, last, ct);
            if (page.Count == 0)
            {
                yield break;
            }

            yield return page;
            after = page[^1].Sequence;
        }
    }

    /// <summary>Writes the lines after <paramref name="after"/> up to <paramref name="last"/> as text, one per line, page by page (millions of lines, flat memory).</summary>
    public static async Task WriteTextAsync(AppDbContext db, int runId, long after, long last, HttpResponse response, CancellationToken ct)
    {
        await foreach (var page in PagesAsync(db, runId, after, last, ct))
        {
            var text = new System.Text.StringBuilder();
            foreach (var line in page)
            {
                text.Append(line.Text).Append('\n');
            }

            await response.WriteAsync(text.ToString(), ct);
        }
    }

    /// <summary>The sequence number of a run's last stored line (0 when it has none).</summary>
    public static async Task<long> LastSequenceAsync(AppDbContext db, int runId, CancellationToken ct) =>
        await db.RunLogLines.Where(l => l.RunId == runId).OrderByDescending(l => l.Sequence).Select(l => (long?)l.Sequence).FirstOrDefaultAsync(ct) ?? 0;

    /// <summary>The last <paramref name="count"/> lines (at most <see cref="MaxBatch"/>), oldest first: what a viewer shows first.</summary>
    public async Task<IReadOnlyList<LogLine>> Tail(int runId, int count)
    {
        var lines = await db.RunLogLines.AsNoTracking()
            .Where(l => l.RunId == runId)
            .OrderByDescending(l => l.Sequence)
            .Take(Math.Clamp(count, 1, MaxBatch))
            .Select(LogLine.FromStored)
            .ToListAsync(Context.ConnectionAborted);
        lines.Reverse();
        return lines;
    }

    /// <summary>The sequence of the first line that reads like an error (error, failed, traceback, fatal), or 0.</summary>
    public async Task<long> FirstError(int runId)
    {
        // ToLower() is translated to SQL lower() on both providers.
#pragma warning disable CA1304, CA1311, CA1862
        return await db.RunLogLines.AsNoTracking()
            .Where(l => l.RunId == runId && (l.Text.ToLower().Contains("error") || l.Text.ToLower().Contains("failed") || l.Text.ToLower().Contains("traceback") || l.Text.ToLower().Contains("fatal")))
            .OrderBy(l => l.Sequence)
            .Select(l => l.Sequence)
            .FirstOrDefaultAsync(Context.ConnectionAborted);
#pragma warning restore CA1304, CA1311, CA1862
    }

    public Task Leave(int runId) => Groups.RemoveFromGroupAsync(Context.ConnectionId, Group(runId));
}
