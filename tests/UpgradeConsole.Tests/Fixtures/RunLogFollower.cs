using System.Net;
using System.Threading.Channels;
using System.Text.Json;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A viewer of a run's live log over SignalR, following the hub's protocol: join with the last
/// sequence it has, drop what it has, fetch what it lacks. Pushed chunks go through a channel to one
/// consumer (a SignalR .NET handler must not await an invocation itself). Every chunk's text must hold
/// exactly the lines its numbers say.
/// </summary>
public sealed class RunLogFollower : IAsyncDisposable
{
    private readonly HubClient _connection;
    private readonly int _runId;
    private readonly Channel<IReadOnlyList<LogChunk>> _pushed = Channel.CreateUnbounded<IReadOnlyList<LogChunk>>();
    private readonly List<LogLine> _lines;
    private Task? _consumer;

    private RunLogFollower(HubClient connection, int runId, List<LogLine> lines)
    {
        _connection = connection;
        _runId = runId;
        _lines = lines;
        _last = lines.Count == 0 ? 0 : lines[^1].Sequence;
        _connection.On(nameof(IRunLogClient.Chunks), arguments =>
        {
            if (arguments[0].GetInt32() == runId)
            {
                _pushed.Writer.TryWrite(arguments[1].Deserialize<List<LogChunk>>(JsonSerializerOptions.Web)!);
            }
        });
    }

    /// <summary>Every line received, in order (shared with a follower that continues this one).</summary>
    public IReadOnlyList<LogLine> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>False for long benchmarks: only the last sequence and the counts are kept, not the lines.</summary>
    public bool KeepLines { get; set; } = true;

    /// <summary>Lines accepted (each sequence once, in order).</summary>
    public long Accepted { get; private set; }

    private long _last;

    /// <summary>Called for every line as it is accepted (for latency measurements).</summary>
    public Action<LogLine>? Received { get; set; }

    /// <summary>Lines received again after the follower already had them (the protocol should make this 0 for live pushes).</summary>
    public long Duplicates { get; private set; }

    /// <summary>Pushed messages received (each a list of chunks; each may overlap what was already there).</summary>
    public int PushedBatches { get; private set; }

    public long Last
    {
        get
        {
            lock (_lines)
            {
                return _last;
            }
        }
    }

    /// <summary>Connects with the cookies of a signed-in user and joins the run after the lines already in <paramref name="resumeFrom"/>.</summary>
    public static async Task<RunLogFollower> StartAsync(string baseUrl, CookieContainer cookies, int runId, List<LogLine>? resumeFrom = null)
    {
        var connection = new HubClient();
        var follower = new RunLogFollower(connection, runId, resumeFrom ?? []);
        await connection.StartAsync(baseUrl, RunLogHub.Path, cookies);
        var backlog = await connection.InvokeAsync<List<LogChunk>>(nameof(RunLogHub.Join), runId, follower.Last);
        await follower.ApplyAsync(backlog, pushed: false);
        follower._consumer = Task.Run(follower.ConsumeAsync);
        return follower;
    }

    /// <summary>Waits until the follower has every line up to <paramref name="sequence"/>.</summary>
    public async Task WaitForAsync(long sequence, TimeSpan timeout)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        var quiet = System.Diagnostics.Stopwatch.StartNew();
        var seen = Last;
        while (Last < sequence)
        {
            if (waited.Elapsed > timeout)
            {
                throw new TimeoutException($"Have up to {Last}, waited for {sequence}.");
            }

            if (Last != seen)
            {
                seen = Last;
                quiet.Restart();
            }

            // A quiet end (no push after the last flush) is caught up by an explicit fetch.
            if (quiet.Elapsed > TimeSpan.FromSeconds(2))
            {
                await ApplyAsync(await _connection.InvokeAsync<List<LogChunk>>(nameof(RunLogHub.Fetch), _runId, Last), pushed: false);
            }

            await Task.Delay(50);
        }
    }

    /// <summary>The list to hand to a follower that resumes after this one is cut.</summary>
    public List<LogLine> Handover()
    {
        lock (_lines)
        {
            return [.. _lines];
        }
    }

    private async Task ConsumeAsync()
    {
        await foreach (var batch in _pushed.Reader.ReadAllAsync())
        {
            PushedBatches++;
            try
            {
                await ApplyAsync(batch, pushed: true);
            }
            catch (InvalidOperationException)
            {
                // The connection was cut: what is missing is fetched by the follower that resumes.
                return;
            }
        }
    }

    private async Task ApplyAsync(IReadOnlyList<LogChunk> batch, bool pushed)
    {
        foreach (var chunk in batch)
        {
            var lines = chunk.Text.AsSpan().Count('\n') + 1;
            if (lines != chunk.Last - chunk.First + 1)
            {
                throw new InvalidOperationException($"Chunk {chunk.First}–{chunk.Last} holds {lines} lines.");
            }

            while (chunk.First > Last + 1)
            {
                // A gap: the lines between were stored before this chunk; fetch them.
                var missing = await _connection.InvokeAsync<List<LogChunk>>(nameof(RunLogHub.Fetch), _runId, Last);
                if (missing.Count == 0)
                {
                    throw new InvalidOperationException($"Line {chunk.First} arrived but {Last + 1} cannot be fetched.");
                }

                foreach (var m in missing.Where(m => m.First < chunk.First))
                {
                    Append(m.Slice(m.First, chunk.First - 1));
                }
            }

            Append(chunk);
        }

        _ = pushed;
    }

    private void Append(LogChunk chunk)
    {
        lock (_lines)
        {
            if (chunk.Last <= _last)
            {
                Duplicates += chunk.Last - chunk.First + 1;
                return;
            }

            if (chunk.First > _last + 1)
            {
                return;
            }

            Duplicates += _last + 1 - chunk.First;
            var fresh = chunk.Slice(_last + 1, chunk.Last);
            if (KeepLines || Received is not null)
            {
                foreach (var line in fresh.Lines())
                {
                    if (KeepLines)
                    {
                        _lines.Add(line);
                    }

                    Received?.Invoke(line);
                }
            }

            _last = fresh.Last;
            Accepted += fresh.Last - fresh.First + 1;
        }
    }

    /// <summary>Cuts the connection (as a dropped network would).</summary>
    public async Task CutAsync()
    {
        await _connection.DisposeAsync();
        _pushed.Writer.TryComplete();
        if (_consumer is not null)
        {
            await _consumer;
        }
    }

    public async ValueTask DisposeAsync() => await CutAsync();
}
