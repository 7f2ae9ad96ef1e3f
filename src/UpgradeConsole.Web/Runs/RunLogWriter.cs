using Microsoft.AspNetCore.SignalR;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Runs;

/// <summary>
/// Stores a run's log lines in batches, secrets masked first, each batch together with the remote
/// offset it reached (one transaction): a reattach resumes exactly after the last stored line.
/// </summary>
public sealed class RunLogWriter(IServiceScopeFactory scopes, int runId, IReadOnlyCollection<string> secrets, TimeProvider clock)
{
    public const string Mask = "••••";
    private readonly List<RunLogLine> _pending = [];
    private long _sequence = -1;
    private long? _offset;
    private int? _phaseId;
    private readonly Lock _publishGate = new();
    private readonly List<LogLine> _unpublished = [];
    private bool _publishing;
    private IHubContext<RunLogHub, IRunLogClient>? _hub;
    private ILogger<RunLogWriter>? _logger;

    /// <summary>How long a line may wait for its batch while lines keep coming.</summary>
    private static readonly TimeSpan MaxDelay = TimeSpan.FromMilliseconds(100);

    /// <summary>The most lines in one batch (a fast step fills batches before <see cref="MaxDelay"/>).</summary>
    private const int MaxBatch = 5000;

    public bool HasPending => _pending.Count > 0;

    public string Masked(string text)
    {
        foreach (var secret in secrets)
        {
            text = text.Replace(secret, Mask, StringComparison.Ordinal);
        }

        return text;
    }

    /// <summary>Adds a line; <paramref name="remoteOffset"/> is where the remote log continues after it.</summary>
    public async Task WriteAsync(RunPhase phase, string text, long? remoteOffset = null, CancellationToken ct = default)
    {
        if (_sequence < 0)
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            _sequence = await db.RunLogLines.Where(l => l.RunId == runId).Select(l => (long?)l.Sequence).MaxAsync(ct) ?? 0;
        }

        if (_phaseId is not null && _phaseId != phase.Id)
        {
            await FlushAsync(ct);
        }

        _phaseId = phase.Id;
        _pending.Add(new RunLogLine { RunId = runId, Sequence = ++_sequence, PhaseIndex = phase.Index, RemoteOffset = remoteOffset, At = clock.GetUtcNow(), Text = Masked(text) });
        if (remoteOffset is not null)
        {
            // The phase's checkpoint moves only with the stored lines (in FlushAsync), never ahead of them.
            _offset = remoteOffset;
        }

        if (_pending.Count >= MaxBatch || clock.GetUtcNow() - _pending[0].At > MaxDelay)
        {
            await FlushAsync(ct);
        }
    }

    public async Task FlushAsync(CancellationToken ct = default)
    {
        if (_pending.Count == 0)
        {
            return;
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await InsertAsync(db, _pending, ct);
        if (_offset is { } offset && _phaseId is { } phaseId)
        {
            await db.RunPhases.Where(p => p.Id == phaseId).ExecuteUpdateAsync(u => u.SetProperty(p => p.LogOffset, offset), ct);
        }

        if (db.Database.IsNpgsql())
        {
            // Other dashboard nodes learn of the batch when it commits (RunLogRelay).
            var payload = RunLogRelay.Payload(scope.ServiceProvider.GetRequiredService<DashboardNode>(), runId, _pending[0].Sequence, _pending[^1].Sequence);
            await db.Database.ExecuteSqlAsync($"SELECT pg_notify({RunLogRelay.Channel}, {payload})", ct);
        }

        await tx.CommitAsync(ct);
        var batch = _pending.Select(LogLine.Of).ToList();
        _pending.Clear();
        _offset = null;
        _hub ??= scope.ServiceProvider.GetService<IHubContext<RunLogHub, IRunLogClient>>();
        _logger ??= scope.ServiceProvider.GetService<ILogger<RunLogWriter>>();
        Publish(batch);
    }

    /// <summary>
    /// Stored first, then pushed: a viewer never sees a line the database does not have. The push runs
    /// beside the writer, never in its way: a slow viewer cannot slow the run's log down. While a push is
    /// on its way, newer batches wait merged (the last <see cref="MaxBatch"/> lines of them; viewers fetch
    /// any gap from the database). A push that fails loses nothing and never fails the run.
    /// </summary>
    private void Publish(List<LogLine> batch)
    {
        if (_hub is null)
        {
            return;
        }

        lock (_publishGate)
        {
            _unpublished.AddRange(batch);
            if (_unpublished.Count > MaxBatch)
            {
                _unpublished.RemoveRange(0, _unpublished.Count - MaxBatch);
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
            List<LogLine> next;
            lock (_publishGate)
            {
                if (_unpublished.Count == 0)
                {
                    _publishing = false;
                    return;
                }

                next = [.. _unpublished];
                _unpublished.Clear();
            }

            try
            {
                await _hub!.Clients.Group(RunLogHub.Group(runId)).Lines(runId, next);
            }
            catch (Exception ex)
            {
                _logger?.LogWarning(ex, "Pushing log lines of run {Run} failed; viewers will fetch them", runId);
            }
        }
    }

    /// <summary>
    /// Inserts a batch without change tracking: binary COPY on PostgreSQL, one prepared INSERT reused
    /// on SQLite, both inside the caller's transaction (a log of millions of lines is mostly this).
    /// </summary>
    private static async Task InsertAsync(AppDbContext db, List<RunLogLine> lines, CancellationToken ct)
    {
        var connection = db.Database.GetDbConnection();
        var transaction = db.Database.CurrentTransaction?.GetDbTransaction();
        if (connection is Npgsql.NpgsqlConnection npgsql)
        {
            await using var copy = await npgsql.BeginBinaryImportAsync(
                "COPY \"RunLogLines\" (\"RunId\", \"Sequence\", \"PhaseIndex\", \"RemoteOffset\", \"At\", \"Text\") FROM STDIN (FORMAT BINARY)", ct);
            foreach (var l in lines)
            {
                await copy.StartRowAsync(ct);
                await copy.WriteAsync(l.RunId, NpgsqlTypes.NpgsqlDbType.Integer, ct);
                await copy.WriteAsync(l.Sequence, NpgsqlTypes.NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(l.PhaseIndex, NpgsqlTypes.NpgsqlDbType.Integer, ct);
                if (l.RemoteOffset is { } offset)
                {
                    await copy.WriteAsync(offset, NpgsqlTypes.NpgsqlDbType.Bigint, ct);
                }
                else
                {
                    await copy.WriteNullAsync(ct);
                }

                await copy.WriteAsync(l.At.ToUniversalTime(), NpgsqlTypes.NpgsqlDbType.TimestampTz, ct);
                await copy.WriteAsync(l.Text, NpgsqlTypes.NpgsqlDbType.Text, ct);
            }

            await copy.CompleteAsync(ct);
            return;
        }

        await using var insert = connection.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = "INSERT INTO \"RunLogLines\" (\"RunId\", \"Sequence\", \"PhaseIndex\", \"RemoteOffset\", \"At\", \"Text\") VALUES ($run, $seq, $phase, $offset, $at, $text)";
        var run = Parameter(insert, "$run");
        var seq = Parameter(insert, "$seq");
        var phase = Parameter(insert, "$phase");
        var off = Parameter(insert, "$offset");
        var at = Parameter(insert, "$at");
        var text = Parameter(insert, "$text");
        await insert.PrepareAsync(ct);
        foreach (var l in lines)
        {
            run.Value = l.RunId;
            seq.Value = l.Sequence;
            phase.Value = l.PhaseIndex;
            off.Value = l.RemoteOffset is { } o ? o : DBNull.Value;
            at.Value = l.At;
            text.Value = l.Text;
            await insert.ExecuteNonQueryAsync(ct);
        }
    }

    private static System.Data.Common.DbParameter Parameter(System.Data.Common.DbCommand command, string name)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        command.Parameters.Add(parameter);
        return parameter;
    }
}
