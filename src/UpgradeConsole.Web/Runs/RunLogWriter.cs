using System.Buffers;
using System.Text;
using Microsoft.AspNetCore.SignalR;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Runs;

/// <summary>
/// Stores a run's log in chunks (consecutive lines of one phase, one row each), secrets masked first,
/// each chunk together with the remote offset it reached (one transaction): a reattach resumes
/// exactly after the last stored line. Then pushes each chunk to the run's viewers as one text.
/// </summary>
public sealed class RunLogWriter(IServiceScopeFactory scopes, int runId, IReadOnlyCollection<string> secrets, TimeProvider clock)
{
    public const string Mask = "••••";

    /// <summary>How long a line may wait for its chunk while lines keep coming.</summary>
    private static readonly TimeSpan MaxDelay = TimeSpan.FromMilliseconds(100);

    /// <summary>The most lines in one chunk (a fast step fills chunks before <see cref="MaxDelay"/>).</summary>
    private const int MaxLines = RunLogHub.MaxBatch;

    /// <summary>The most characters in one chunk (long lines fill it before <see cref="MaxLines"/>).</summary>
    private const int MaxChars = 512 * 1024;

    /// <summary>Pushed chunks waiting for a slow push beyond this many characters are dropped (viewers fetch the gap).</summary>
    private const int MaxUnpublishedChars = 4 * 1024 * 1024;

    /// <summary>Words that make a line read like an error (the run page's "first error"), in any case.</summary>
    private static readonly SearchValues<string> ErrorWords = SearchValues.Create(["error", "failed", "traceback", "fatal"], StringComparison.OrdinalIgnoreCase);

    private readonly StringBuilder _text = new();
    private int _lines;
    private long _first;
    private DateTimeOffset _at;
    private long _sequence = -1;
    private long? _offset;
    private RunPhase? _phase;
    private readonly Lock _publishGate = new();
    private readonly List<LogChunk> _unpublished = [];
    private long _unpublishedChars;
    private bool _publishing;
    private Task _storing = Task.CompletedTask;
    private IHubContext<RunLogHub, IRunLogClient>? _hub;
    private ILogger<RunLogWriter>? _logger;

    public bool HasPending => _lines > 0;

    public string Masked(string text)
    {
        foreach (var secret in secrets)
        {
            text = text.Replace(secret, Mask, StringComparison.Ordinal);
        }

        return text;
    }

    /// <summary>
    /// Adds a line (a text with line breaks adds several); <paramref name="remoteOffset"/> is where the
    /// remote log continues after it.
    /// </summary>
    public async Task WriteAsync(RunPhase phase, string text, long? remoteOffset = null, CancellationToken ct = default)
    {
        if (_sequence < 0)
        {
            await using var scope = scopes.CreateAsyncScope();
            _sequence = await RunLogHub.LastSequenceAsync(scope.ServiceProvider.GetRequiredService<AppDbContext>(), runId, ct);
        }

        if (_phase is not null && _phase.Id != phase.Id)
        {
            await CutAsync(ct);
        }

        if (_lines == 0)
        {
            _phase = phase;
            _first = _sequence + 1;
            _at = clock.GetUtcNow();
        }
        else
        {
            _text.Append('\n');
        }

        _text.Append(text);
        _lines += 1 + text.AsSpan().Count('\n');
        _sequence = _first + _lines - 1;
        if (remoteOffset is not null)
        {
            // The phase's checkpoint moves only with the stored lines (in FlushAsync), never ahead of them.
            _offset = remoteOffset;
        }

        if (_lines >= MaxLines || _text.Length >= MaxChars || clock.GetUtcNow() - _at > MaxDelay)
        {
            await CutAsync(ct);
        }
    }

    /// <summary>Stores every line written so far; returns once they are in the database.</summary>
    public async Task FlushAsync(CancellationToken ct = default)
    {
        await CutAsync(ct);
        await _storing;
    }

    /// <summary>
    /// Closes the chunk being filled and stores it beside the writer (one store at a time, in order), so
    /// reading the next lines overlaps writing these; a failed store fails the next cut or flush.
    /// </summary>
    private async Task CutAsync(CancellationToken ct)
    {
        if (_lines == 0)
        {
            return;
        }

        var chunk = new RunLogChunk
        {
            RunId = runId,
            FirstSequence = _first,
            LastSequence = _first + _lines - 1,
            PhaseIndex = _phase!.Index,
            RemoteOffset = _offset,
            At = _at,
            Text = _text.ToString(),
        };
        var phaseId = _phase.Id;
        _text.Clear();
        if (_text.Capacity > 2 * MaxChars)
        {
            _text.Capacity = MaxChars;
        }

        _lines = 0;
        _offset = null;
        await _storing;
        // On a thread of its own: SQLite's "async" calls run synchronously.
        _storing = Task.Run(() => StoreAsync(chunk, phaseId, ct), ct);
    }

    private async Task StoreAsync(RunLogChunk chunk, int phaseId, CancellationToken ct)
    {
        chunk.Text = Masked(chunk.Text);
        chunk.FirstErrorSequence = FirstError(chunk.Text, chunk.FirstSequence);
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        db.RunLogChunks.Add(chunk);
        await db.SaveChangesAsync(ct);
        if (chunk.RemoteOffset is { } offset)
        {
            // The phase's checkpoint moves with the stored lines, never ahead of them.
            await db.RunPhases.Where(p => p.Id == phaseId).ExecuteUpdateAsync(u => u.SetProperty(p => p.LogOffset, offset), ct);
        }

        if (db.Database.IsNpgsql())
        {
            // Other dashboard nodes learn of the chunk when it commits (RunLogRelay).
            var payload = RunLogRelay.Payload(scope.ServiceProvider.GetRequiredService<DashboardNode>(), runId, chunk.FirstSequence, chunk.LastSequence);
            await db.Database.ExecuteSqlAsync($"SELECT pg_notify({RunLogRelay.Channel}, {payload})", ct);
        }

        await tx.CommitAsync(ct);
        _hub ??= scope.ServiceProvider.GetService<IHubContext<RunLogHub, IRunLogClient>>();
        _logger ??= scope.ServiceProvider.GetService<ILogger<RunLogWriter>>();
        Publish(LogChunk.Of(chunk));
    }

    /// <summary>The sequence number of the first line of <paramref name="text"/> that reads like an error, if any.</summary>
    public static long? FirstError(string text, long first)
    {
        var at = text.AsSpan().IndexOfAny(ErrorWords);
        return at < 0 ? null : first + text.AsSpan(0, at).Count('\n');
    }

    /// <summary>
    /// Stored first, then pushed: a viewer never sees a line the database does not have. The push runs
    /// beside the writer, never in its way: a slow viewer cannot slow the run's log down. While a push is
    /// on its way, newer chunks wait (up to <see cref="MaxUnpublishedChars"/>; viewers fetch any gap from
    /// the database). A push that fails loses nothing and never fails the run.
    /// </summary>
    private void Publish(LogChunk chunk)
    {
        if (_hub is null)
        {
            return;
        }

        lock (_publishGate)
        {
            _unpublished.Add(chunk);
            _unpublishedChars += chunk.Text.Length;
            while (_unpublishedChars > MaxUnpublishedChars && _unpublished.Count > 1)
            {
                _unpublishedChars -= _unpublished[0].Text.Length;
                _unpublished.RemoveAt(0);
            }

            if (!_publishing)
            {
                _publishing = true;
                _ = Task.Run(PublishLoopAsync);
            }
        }
    }

    private async Task PublishLoopAsync()
    {
        while (true)
        {
            List<LogChunk> next;
            lock (_publishGate)
            {
                if (_unpublished.Count == 0)
                {
                    _publishing = false;
                    return;
                }

                // A message of about one chunk's size at most: big messages cost every viewer memory.
                var take = 0;
                var chars = 0L;
                while (take < _unpublished.Count && (take == 0 || chars + _unpublished[take].Text.Length <= MaxChars))
                {
                    chars += _unpublished[take++].Text.Length;
                }

                next = _unpublished[..take];
                _unpublished.RemoveRange(0, take);
                _unpublishedChars -= chars;
            }

            try
            {
                await _hub!.Clients.Group(RunLogHub.Group(runId)).Chunks(runId, next);
            }
            catch (Exception ex)
            {
                _logger?.LogWarning(ex, "Pushing log lines of run {Run} failed; viewers will fetch them", runId);
            }
        }
    }
}
