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

    /// <summary>
    /// The most characters in one chunk: under 85,000 bytes as a string, so no chunk's text lands on the
    /// large object heap (which only a full collection frees: measured, 1 MB chunks cost the dashboard
    /// 100 MB more at its peak).
    /// </summary>
    private const int MaxChars = 40 * 1024;

    /// <summary>The upper half of the advisory lock keys of run logs (the lower half is the run's id).</summary>
    private const long LogLockSpace = 0x55434C47L << 32;

    private static readonly string[] InsertParameters = ["@run", "@first", "@last", "@phase", "@offset", "@at", "@error", "@text"];

    /// <summary>Chunks that may wait for the database before the reader waits too (about 2.5 MB).</summary>
    private const int MaxQueued = 64;

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
    private readonly Lock _queueGate = new();
    private readonly List<(RunLogChunk Chunk, int PhaseId, PhaseChange? Change)> _queue = [];
    private PhaseChange? _change;
    private readonly Queue<string> _replay = new();
    private bool _storeRunning;
    private Exception? _failure;
    private Task _storing = Task.CompletedTask;

    /// <summary>Added to this writer's numbers when stored: lines another writer stored meanwhile come before ours.</summary>
    private long _shift;
    private IHubContext<RunLogHub, IRunLogClient>? _hub;
    private ILogger<RunLogWriter>? _logger;
    private Metrics.DashboardMetrics? _metrics;

    public bool HasPending => _lines > 0;

    /// <summary>
    /// Lines this phase's attempt stored before an interruption (see <see cref="RunDriver"/>): a resumed
    /// builtin phase does its work again and says the same things, and each line it writes that equals
    /// the next of these is already in the log, so it is not stored twice. The first line that differs
    /// ends the replay: from there on everything is stored.
    /// </summary>
    public void Replay(IEnumerable<string> storedLines)
    {
        _replay.Clear();
        foreach (var line in storedLines)
        {
            _replay.Enqueue(line);
        }
    }

    /// <summary>
    /// Stores <paramref name="line"/> and every line before it, together with <paramref name="change"/> of
    /// the phase's state, in one transaction: a phase's header is never stored without the state it
    /// announces, nor its end without its result.
    /// </summary>
    public async Task WriteAndCommitAsync(RunPhase phase, string line, PhaseChange change, CancellationToken ct = default)
    {
        _replay.Clear();
        // The change travels with the chunk that starts with this line (whichever cut closes it).
        await CutAsync(ct);
        _change = change;
        await WriteAsync(phase, line, ct: ct);
        await FlushAsync(ct);
    }

    public string Masked(string text) => Masked(text, secrets);

    /// <summary>The log's masking: every occurrence of each secret becomes <see cref="Mask"/> (notifications use it too).</summary>
    public static string Masked(string text, IEnumerable<string> secrets)
    {
        foreach (var secret in secrets.Where(s => !string.IsNullOrEmpty(s)))
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
        if (remoteOffset is null && _replay.Count > 0)
        {
            var lines = text.Split('\n');
            var same = 0;
            while (same < lines.Length && _replay.TryPeek(out var stored) && stored == Masked(lines[same]))
            {
                _replay.Dequeue();
                same++;
            }

            if (same == lines.Length)
            {
                return;
            }

            _replay.Clear();
            text = string.Join('\n', lines[same..]);
        }

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
            // The phase's checkpoint moves only with the stored lines (in StoreAsync), never ahead of them.
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
        while (true)
        {
            Task storing;
            lock (_queueGate)
            {
                ThrowIfFailed();
                if (!_storeRunning)
                {
                    return;
                }

                storing = _storing;
            }

            await storing.WaitAsync(ct);
        }
    }

    /// <summary>
    /// Closes the chunk being filled and queues it for storing beside the writer, so reading the next
    /// lines overlaps writing these. The store takes every chunk queued meanwhile in one transaction, in
    /// order. A failed store fails every later cut or flush (the log cannot continue with a hole).
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
        var change = _change;
        _change = null;
        _text.Clear();
        _lines = 0;
        _offset = null;
        Task? wait = null;
        lock (_queueGate)
        {
            ThrowIfFailed();
            _queue.Add((chunk, phaseId, change));
            if (!_storeRunning)
            {
                _storeRunning = true;
                // On a thread of its own (SQLite's "async" calls run synchronously), and never cancelled: a
                // store is short, and a cancelled one would leave the writer unable to store what the
                // run writes while it stops (its checkpoint only moves with stored lines either way).
                _storing = Task.Run(StoreQueuedAsync, CancellationToken.None);
            }
            else if (_queue.Count >= MaxQueued)
            {
                // The database is slower than the step: the reader waits (the remote log keeps the lines).
                wait = _storing;
            }
        }

        if (wait is not null)
        {
            await wait.WaitAsync(ct);
        }
    }

    private void ThrowIfFailed()
    {
        if (_failure is not null)
        {
            throw new InvalidOperationException($"Storing the log of run {runId} failed: {_failure.Message}", _failure);
        }
    }

    private async Task StoreQueuedAsync()
    {
        while (true)
        {
            List<(RunLogChunk Chunk, int PhaseId, PhaseChange? Change)> batch;
            lock (_queueGate)
            {
                if (_queue.Count == 0)
                {
                    _storeRunning = false;
                    return;
                }

                batch = [.. _queue];
                _queue.Clear();
            }

            try
            {
                await StoreAsync(batch);
            }
            catch (Exception ex)
            {
                lock (_queueGate)
                {
                    _failure = ex;
                    _queue.Clear();
                    _storeRunning = false;
                }

                return;
            }
        }
    }

    /// <summary>
    /// One transaction: the chunks (masked, first error found), each phase's checkpoint moved to the
    /// last offset stored for it (never ahead of the stored lines), and on PostgreSQL the announcement
    /// to the other nodes (delivered on commit). Plain commands: a long log is thousands of these.
    /// </summary>
    private async Task StoreAsync(List<(RunLogChunk Chunk, int PhaseId, PhaseChange? Change)> batch)
    {
        var ct = CancellationToken.None;
        foreach (var (chunk, _, _) in batch)
        {
            chunk.Text = Masked(chunk.Text);
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        await db.Database.OpenConnectionAsync(ct);
        var connection = db.Database.GetDbConnection();
        var postgres = db.Database.IsNpgsql();
        long stored;
        await using (var tx = await connection.BeginTransactionAsync(ct))
        {
            // Usually one writer per run, but the dashboard may add a line of its own (a job delivered twice)
            // while a phase writes: the run's writers take turns (PostgreSQL: a lock per run; SQLite: one
            // writer at a time anyway), and each numbers its chunks after the last one stored.
            if (postgres)
            {
                await using var turn = connection.CreateCommand();
                turn.Transaction = tx;
                turn.CommandText = "SELECT pg_advisory_xact_lock(@key)";
                var key = turn.CreateParameter();
                key.ParameterName = "@key";
                key.Value = LogLockSpace | (uint)runId;
                turn.Parameters.Add(key);
                await turn.ExecuteNonQueryAsync(ct);
            }

            await using (var last = connection.CreateCommand())
            {
                // A statement of its own after the lock: under READ COMMITTED it sees what the writer before committed.
                last.Transaction = tx;
                last.CommandText = """SELECT COALESCE(MAX("LastSequence"), 0) FROM "RunLogChunks" WHERE "RunId" = @run""";
                var run = last.CreateParameter();
                run.ParameterName = "@run";
                run.Value = runId;
                last.Parameters.Add(run);
                stored = Convert.ToInt64(await last.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
                _shift += stored + 1 - (batch[0].Chunk.FirstSequence + _shift);
            }

            foreach (var (chunk, _, _) in batch)
            {
                chunk.FirstSequence += _shift;
                chunk.LastSequence += _shift;
                chunk.FirstErrorSequence = FirstError(chunk.Text, chunk.FirstSequence);
            }

            await using var insert = connection.CreateCommand();
            insert.Transaction = tx;
            insert.CommandText = """
                INSERT INTO "RunLogChunks" ("RunId", "FirstSequence", "LastSequence", "PhaseIndex", "RemoteOffset", "At", "FirstErrorSequence", "Text")
                VALUES (@run, @first, @last, @phase, @offset, @at, @error, @text)
                """;
            var parameters = InsertParameters.Select(name =>
            {
                var parameter = insert.CreateParameter();
                parameter.ParameterName = name;
                insert.Parameters.Add(parameter);
                return parameter;
            }).ToArray();
            foreach (var (chunk, _, _) in batch)
            {
                parameters[0].Value = chunk.RunId;
                parameters[1].Value = chunk.FirstSequence;
                parameters[2].Value = chunk.LastSequence;
                parameters[3].Value = chunk.PhaseIndex;
                parameters[4].Value = chunk.RemoteOffset is { } o ? o : DBNull.Value;
                parameters[5].Value = postgres ? chunk.At.ToUniversalTime() : chunk.At;
                parameters[6].Value = chunk.FirstErrorSequence is { } e ? e : DBNull.Value;
                parameters[7].Value = chunk.Text;
                await insert.ExecuteNonQueryAsync(ct);
            }

            await using var checkpoint = connection.CreateCommand();
            checkpoint.Transaction = tx;
            checkpoint.CommandText = """UPDATE "RunPhases" SET "LogOffset" = @offset WHERE "Id" = @phase""";
            var offset = checkpoint.CreateParameter();
            offset.ParameterName = "@offset";
            var phase = checkpoint.CreateParameter();
            phase.ParameterName = "@phase";
            checkpoint.Parameters.Add(offset);
            checkpoint.Parameters.Add(phase);
            foreach (var last in batch.Where(b => b.Chunk.RemoteOffset is not null).GroupBy(b => b.PhaseId).Select(g => g.Last()))
            {
                offset.Value = last.Chunk.RemoteOffset!.Value;
                phase.Value = last.PhaseId;
                await checkpoint.ExecuteNonQueryAsync(ct);
            }

            foreach (var (_, phaseId, change) in batch)
            {
                if (change is not null)
                {
                    await StoreChangeAsync(connection, tx, phaseId, change, ct);
                }
            }

            if (postgres)
            {
                await using var notify = connection.CreateCommand();
                notify.Transaction = tx;
                notify.CommandText = "SELECT pg_notify(@channel, @payload)";
                var channel = notify.CreateParameter();
                channel.ParameterName = "@channel";
                channel.Value = RunLogRelay.Channel;
                var payload = notify.CreateParameter();
                payload.ParameterName = "@payload";
                payload.Value = RunLogRelay.Payload(scope.ServiceProvider.GetRequiredService<DashboardNode>(), runId, batch[0].Chunk.FirstSequence, batch[^1].Chunk.LastSequence);
                notify.Parameters.Add(channel);
                notify.Parameters.Add(payload);
                await notify.ExecuteNonQueryAsync(ct);
            }

            await tx.CommitAsync(ct);
        }

        _hub ??= scope.ServiceProvider.GetService<IHubContext<RunLogHub, IRunLogClient>>();
        _logger ??= scope.ServiceProvider.GetService<ILogger<RunLogWriter>>();
        _metrics ??= scope.ServiceProvider.GetService<Metrics.DashboardMetrics>();
        _metrics?.LinesStored(batch.Sum(b => (int)(b.Chunk.LastSequence - b.Chunk.FirstSequence + 1)));
        scope.ServiceProvider.GetService<RunActivity>()?.Pulse(runId);
        scope.ServiceProvider.GetService<RunLogFirstErrors>()?.Stored(runId, stored, batch[^1].Chunk.LastSequence, batch.Select(b => b.Chunk.FirstErrorSequence).FirstOrDefault(e => e is not null));
        foreach (var (chunk, _, _) in batch)
        {
            CrashPoints.Stored(chunk.Text);
            Publish(LogChunk.Of(chunk));
        }
    }

    private static async Task StoreChangeAsync(System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction tx, int phaseId, PhaseChange change, CancellationToken ct)
    {
        await using var update = connection.CreateCommand();
        update.Transaction = tx;
        update.CommandText = change.Final
            ? """UPDATE "RunPhases" SET "State" = @state, "Message" = @message, "ExitCode" = @exit WHERE "Id" = @phase"""
            : """UPDATE "RunPhases" SET "State" = @state WHERE "Id" = @phase""";
        void Add(string name, object? value)
        {
            var parameter = update.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value ?? DBNull.Value;
            update.Parameters.Add(parameter);
        }

        Add("@state", change.State.ToString());
        Add("@phase", phaseId);
        if (change.Final)
        {
            Add("@message", change.Message);
            Add("@exit", change.ExitCode);
        }

        await update.ExecuteNonQueryAsync(ct);
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

                // Messages of a few chunks at most: big messages cost the dashboard and every viewer memory.
                var take = 0;
                var chars = 0L;
                while (take < _unpublished.Count && (take == 0 || chars + _unpublished[take].Text.Length <= 4 * MaxChars))
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
                _metrics?.LinesPushed(next.Sum(c => (int)(c.Last - c.First + 1)));
            }
            catch (Exception ex)
            {
                _logger?.LogWarning(ex, "Pushing log lines of run {Run} failed; viewers will fetch them", runId);
            }
        }
    }
}

/// <summary>A phase's state stored in the same transaction as a line of its log; <see cref="Final"/> also stores its message and exit code.</summary>
public sealed record PhaseChange(PhaseState State, bool Final = false, string? Message = null, int? ExitCode = null);
