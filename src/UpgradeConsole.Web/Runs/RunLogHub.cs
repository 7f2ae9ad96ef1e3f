using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Runs;

/// <summary>One stored log line (already masked), as the API hands it out.</summary>
public sealed record LogLine(long Sequence, int Phase, DateTimeOffset At, string Text);

/// <summary>
/// Consecutive lines of one phase as viewers receive them: <see cref="Text"/> is the lines joined by
/// '\n', the first numbered <see cref="First"/>, the last <see cref="Last"/>. Already masked. In JSON
/// the lines travel as an array of strings (<see cref="LogChunkJson"/>).
/// </summary>
[JsonConverter(typeof(LogChunkJson))]
public sealed record LogChunk(long First, long Last, int Phase, DateTimeOffset At, string Text)
{
    public static LogChunk Of(RunLogChunk stored) => new(stored.FirstSequence, stored.LastSequence, stored.PhaseIndex, stored.At, stored.Text);

    /// <summary>The lines numbered <paramref name="from"/> to <paramref name="to"/> (clamped to this chunk).</summary>
    public LogChunk Slice(long from, long to)
    {
        from = Math.Max(from, First);
        to = Math.Min(to, Last);
        if (from == First && to == Last)
        {
            return this;
        }

        var start = LineStart(Text, 0, from - First);
        var end = to == Last ? Text.Length : LineStart(Text, start, to - from + 1) - 1;
        return new LogChunk(from, to, Phase, At, Text[start..end]);
    }

    /// <summary>The lines one by one.</summary>
    public IEnumerable<LogLine> Lines()
    {
        var sequence = First;
        foreach (var line in Text.Split('\n'))
        {
            yield return new LogLine(sequence++, Phase, At, line);
        }
    }

    /// <summary>Where the line <paramref name="lines"/> lines after the one starting at <paramref name="position"/> starts.</summary>
    private static int LineStart(string text, int position, long lines)
    {
        for (var i = 0L; i < lines; i++)
        {
            position += text.AsSpan(position).IndexOf('\n') + 1;
        }

        return position;
    }
}

/// <summary>
/// A chunk in JSON: <c>{"first", "last", "phase", "at", "lines": [...]}</c>. An array of lines, not the
/// joined text: a '\n' inside a JSON string must be escaped, which sends every line through the
/// writer's slow escaping path (measured: 5× slower for 100 MB) and every reader through unescaping.
/// The lines are written straight from the stored text, without a string per line.
/// </summary>
public sealed class LogChunkJson : JsonConverter<LogChunk>
{
    public override LogChunk Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A log chunk is a JSON object.");
        }

        long first = 0, last = 0;
        var phase = 0;
        var at = default(DateTimeOffset);
        string? text = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString();
            reader.Read();
            switch (name)
            {
                case "first": first = reader.GetInt64(); break;
                case "last": last = reader.GetInt64(); break;
                case "phase": phase = reader.GetInt32(); break;
                case "at": at = reader.GetDateTimeOffset(); break;
                case "lines":
                    var joined = new StringBuilder();
                    var separator = false;
                    while (reader.Read() && reader.TokenType == JsonTokenType.String)
                    {
                        if (separator)
                        {
                            joined.Append('\n');
                        }

                        joined.Append(reader.GetString());
                        separator = true;
                    }

                    text = joined.ToString();
                    break;
                default: reader.Skip(); break;
            }
        }

        return new LogChunk(first, last, phase, at, text ?? throw new JsonException("A log chunk needs its lines."));
    }

    public override void Write(Utf8JsonWriter writer, LogChunk value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        writer.WriteNumber("first", value.First);
        writer.WriteNumber("last", value.Last);
        writer.WriteNumber("phase", value.Phase);
        writer.WriteString("at", value.At);
        writer.WriteStartArray("lines");
        foreach (var range in value.Text.AsSpan().Split('\n'))
        {
            writer.WriteStringValue(value.Text.AsSpan()[range]);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }
}

/// <summary>What the server calls on a viewer.</summary>
public interface IRunLogClient
{
    /// <summary>Chunks just stored for <paramref name="runId"/>, in sequence order (they may overlap what the viewer has, or leave a gap it fetches).</summary>
    Task Chunks(int runId, IReadOnlyList<LogChunk> chunks);
}

/// <summary>
/// Live run logs, one group per run. The protocol makes gaps and duplicates impossible for a viewer
/// that follows it: <see cref="Join"/> with the last sequence it has (0 for none) returns what it
/// lacks and subscribes it; pushed chunks carry sequence numbers, so the viewer drops what it has
/// and, on a gap, asks <see cref="Fetch"/> for the missing range. A viewer that reconnects joins
/// again with its last sequence. The static functions here are the only readers of stored lines.
/// </summary>
[Authorize(Policy = Policies.View)]
public sealed class RunLogHub(AppDbContext db, UpgradeConsole.Web.Hosting.LiveConnections live, RunLogFirstErrors firstErrors) : Hub<IRunLogClient>
{
    public const string Path = "/hubs/run-log";

    /// <summary>
    /// Registered with the live connections, which close it when its person is disabled, demoted or signs in afresh
    /// elsewhere with a new password; refused beyond the per-person cap.
    /// </summary>
    public override Task OnConnectedAsync()
    {
        var context = Context;
        var registration = live.TryOpen(UpgradeConsole.Web.Hosting.LiveConnections.LogHub, context.User ?? new System.Security.Claims.ClaimsPrincipal(), context.Abort);
        if (registration is null)
        {
            throw new HubException("Too many open live-log connections for this account: close some run pages.");
        }

        context.Items[typeof(UpgradeConsole.Web.Hosting.LiveConnections)] = registration;
        return Task.CompletedTask;
    }

    public override Task OnDisconnectedAsync(Exception? exception)
    {
        (Context.Items[typeof(UpgradeConsole.Web.Hosting.LiveConnections)] as IDisposable)?.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>The most lines one answer carries (call again with the last sequence for more).</summary>
    public const int MaxBatch = 5000;

    public static string Group(int runId) => $"run-{runId}";

    /// <summary>Subscribes to the run and returns up to <see cref="MaxBatch"/> lines after <paramref name="after"/> (call <see cref="Fetch"/> for more).</summary>
    public async Task<IReadOnlyList<LogChunk>> Join(int runId, long after)
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
    public async Task<IReadOnlyList<LogChunk>> Fetch(int runId, long after) =>
        await ChunksAsync(db, runId, after, long.MaxValue, MaxBatch, Context.ConnectionAborted);

    /// <summary>The last <paramref name="count"/> lines (at most <see cref="MaxBatch"/>), oldest first: what a viewer shows first.</summary>
    public async Task<IReadOnlyList<LogChunk>> Tail(int runId, int count)
    {
        count = Math.Clamp(count, 1, MaxBatch);
        var chunks = new List<LogChunk>();
        var have = 0L;
        await foreach (var stored in db.RunLogChunks.AsNoTracking().Where(c => c.RunId == runId).OrderByDescending(c => c.FirstSequence)
                           .AsAsyncEnumerable().WithCancellation(Context.ConnectionAborted))
        {
            var chunk = LogChunk.Of(stored);
            chunks.Add(chunk.Slice(Math.Max(chunk.First, chunk.Last - (count - have) + 1), chunk.Last));
            have += chunks[^1].Last - chunks[^1].First + 1;
            if (have >= count)
            {
                break;
            }
        }

        chunks.Reverse();
        return chunks;
    }

    /// <summary>
    /// The sequence of the first line that reads like an error (error, failed, traceback, fatal), or 0.
    /// Remembered per run (<see cref="RunLogFirstErrors"/>): no scan of a long log's chunks per click.
    /// </summary>
    public async Task<long> FirstError(int runId) =>
        await firstErrors.FindAsync(db, runId, Context.ConnectionAborted) ?? 0;

    public Task Leave(int runId) => Groups.RemoveFromGroupAsync(Context.ConnectionId, Group(runId));

    /// <summary>
    /// A run's lines after <paramref name="after"/> up to <paramref name="upTo"/> as chunks, oldest first,
    /// at most <paramref name="maxLines"/> lines (the first and last chunk cut to fit).
    /// </summary>
    public static async Task<List<LogChunk>> ChunksAsync(AppDbContext db, int runId, long after, long upTo, long maxLines, CancellationToken ct)
    {
        var chunks = new List<LogChunk>();
        if (upTo <= after)
        {
            return chunks;
        }

        var limit = maxLines >= upTo - after ? upTo : after + maxLines;
        await foreach (var stored in db.RunLogChunks.AsNoTracking()
                           .Where(c => c.RunId == runId && c.LastSequence > after && c.FirstSequence <= limit)
                           .OrderBy(c => c.FirstSequence)
                           .AsAsyncEnumerable().WithCancellation(ct))
        {
            chunks.Add(LogChunk.Of(stored).Slice(after + 1, limit));
        }

        return chunks;
    }

    /// <summary>A run's lines after <paramref name="after"/> up to <paramref name="last"/>, page by page.</summary>
    public static async IAsyncEnumerable<List<LogLine>> PagesAsync(AppDbContext db, int runId, long after, long last, [EnumeratorCancellation] CancellationToken ct)
    {
        await foreach (var page in ChunkPagesAsync(db, runId, after, last, MaxBatch, ct))
        {
            yield return [.. page.SelectMany(c => c.Lines())];
        }
    }

    /// <summary>Writes the lines after <paramref name="after"/> up to <paramref name="last"/> as text, one per line, chunk by chunk (millions of lines, flat memory).</summary>
    public static async Task WriteTextAsync(AppDbContext db, int runId, long after, long last, HttpResponse response, CancellationToken ct)
    {
        await foreach (var page in ChunkPagesAsync(db, runId, after, last, 20 * MaxBatch, ct))
        {
            foreach (var chunk in page)
            {
                await response.WriteAsync(chunk.Text, ct);
                await response.WriteAsync("\n", ct);
            }
        }
    }

    /// <summary>Only the lines of one host of a phase on many hosts (those under its <c>[host] </c> prefix), in order.</summary>
    public static async Task WriteHostTextAsync(AppDbContext db, int runId, string host, HttpResponse response, CancellationToken ct)
    {
        var prefix = Core.Fleet.FleetLogLine.Prefix(host);
        await foreach (var page in ChunkPagesAsync(db, runId, 0, long.MaxValue, 20 * MaxBatch, ct))
        {
            foreach (var chunk in page)
            {
                foreach (var line in chunk.Text.Split('\n'))
                {
                    if (line.StartsWith(prefix, StringComparison.Ordinal))
                    {
                        await response.WriteAsync(line, ct);
                        await response.WriteAsync("\n", ct);
                    }
                }
            }
        }
    }

    /// <summary>The chunks after <paramref name="after"/> up to <paramref name="last"/>, <paramref name="pageLines"/> lines a page.</summary>
    private static async IAsyncEnumerable<List<LogChunk>> ChunkPagesAsync(AppDbContext db, int runId, long after, long last, long pageLines, [EnumeratorCancellation] CancellationToken ct)
    {
        while (after < last)
        {
            var page = await ChunksAsync(db, runId, after, last, pageLines, ct);
            if (page.Count == 0)
            {
                yield break;
            }

            yield return page;
            after = page[^1].Last;
        }
    }

    /// <summary>The sequence number of a run's last stored line (0 when it has none).</summary>
    public static async Task<long> LastSequenceAsync(AppDbContext db, int runId, CancellationToken ct) =>
        await db.RunLogChunks.Where(c => c.RunId == runId).MaxAsync(c => (long?)c.LastSequence, ct) ?? 0;
}
