using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using UpgradeConsole.Core.Fleet;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Runbooks;

/// <summary>
/// One host's state in one phase of a run that acts on many hosts (a fleet phase, ADR 0025): the host grid's row, and
/// what a phase taken up again (after a restart, on another node, or by a person's retry) continues from.
/// </summary>
public sealed class RunHostStep
{
    public long Id { get; set; }

    public int RunId { get; set; }

    public string PhaseKey { get; set; } = "";

    /// <summary>The host's label (its address), as its log lines are prefixed.</summary>
    public string Host { get; set; } = "";

    /// <summary>The host's place in the phase's order (its batches follow it).</summary>
    public int Index { get; set; }

    public FleetHostState State { get; set; }

    /// <summary>The host's own attempt (its step directory); a retry after a failure is a new one.</summary>
    public int Attempt { get; set; } = 1;

    /// <summary>The host's lines stored by its earlier attempts (its lines of this attempt come after these).</summary>
    public long LinesBefore { get; set; }

    /// <summary>The host's lines of this attempt when its state last changed (for the grid; a reattach counts the stored log).</summary>
    public long LinesStored { get; set; }

    public bool StepMayBeRunning { get; set; }

    public int? ExitCode { get; set; }

    public string? Message { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>Failed or unreachable: what a rollout's policy counts, and what may be retried alone.</summary>
    public bool IsFailure => State is FleetHostState.Failed or FleetHostState.Unreachable;

    public FleetHostStatus Status(long linesStored) => new(Host, State, Attempt, linesStored, StepMayBeRunning, ExitCode, Message);
}

internal sealed class RunHostStepConfiguration : IEntityTypeConfiguration<RunHostStep>
{
    public void Configure(EntityTypeBuilder<RunHostStep> builder)
    {
        builder.ToTable("RunHostSteps");
        builder.Property(h => h.PhaseKey).HasMaxLength(100);
        builder.Property(h => h.Host).HasMaxLength(300);
        builder.Property(h => h.State).HasConversion<string>().HasMaxLength(20);
        builder.Property(h => h.Message).HasMaxLength(2000);
        builder.HasIndex(h => new { h.RunId, h.PhaseKey, h.Host }).IsUnique();
        builder.HasOne<Run>().WithMany().HasForeignKey(h => h.RunId).OnDelete(DeleteBehavior.Cascade);
    }
}

/// <summary>
/// Keeps fleet phases' per-host progress in the dashboard's database: each host's state change is stored (after the
/// host's lines before it), and a phase taken up again starts from it: hosts that succeeded are not run again, a host
/// that was running is reattached and skips exactly the lines of its attempt already in the run's log (counted there,
/// under its prefix), a failed one is retried in a new step directory.
/// </summary>
public sealed class FleetPhaseStore(IServiceScopeFactory scopes, TimeProvider clock)
{
    /// <summary>Every host's row of a run, in phase then host order (the run page's grid, the API).</summary>
    public async Task<IReadOnlyList<RunHostStep>> HostsAsync(int runId, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        return await db.Set<RunHostStep>().AsNoTracking().Where(h => h.RunId == runId).OrderBy(h => h.Id).ToListAsync(ct);
    }

    /// <summary>
    /// The progress to continue <paramref name="phase"/> from, for <paramref name="labels"/> in the phase's order:
    /// stored hosts with their lines of the current attempt counted in the run's log; hosts never stored are pending
    /// (a host added to the cluster meanwhile is run like the others). Stores a row for each host not stored yet.
    /// </summary>
    public async Task<FleetProgress> LoadAsync(int runId, RunPhase phase, IReadOnlyList<string> labels, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var stored = await db.Set<RunHostStep>().Where(h => h.RunId == runId && h.PhaseKey == phase.Key).ToDictionaryAsync(h => h.Host, StringComparer.Ordinal, ct);
        // Only a host that will be reattached needs its stored lines counted in the log (a finished host's count was
        // stored with its last change, and a failed one starts a new attempt): the phase's log is read only then.
        var counts = stored.Values.Any(r => FleetProgress.Reattaches(r.Status(r.LinesStored)))
            ? await CountLinesAsync(db, runId, phase.Index, ct)
            : new Dictionary<string, long>();
        var now = clock.GetUtcNow();
        var statuses = new List<FleetHostStatus>();
        for (var i = 0; i < labels.Count; i++)
        {
            var label = labels[i];
            if (stored.TryGetValue(label, out var row))
            {
                var status = row.Status(row.LinesStored);
                statuses.Add(FleetProgress.Reattaches(status) ? row.Status(Math.Max(0, counts.GetValueOrDefault(label) - row.LinesBefore)) : status);
                continue;
            }

            db.Add(new RunHostStep { RunId = runId, PhaseKey = phase.Key, Host = label, Index = i, State = FleetHostState.Pending, UpdatedAt = now });
            statuses.Add(new FleetHostStatus(label, FleetHostState.Pending, 1, 0, false, null, null));
        }

        await db.SaveChangesAsync(ct);
        return new FleetProgress(statuses);
    }

    /// <summary>Stores a host's new state; a new attempt moves the lines of the one before into <see cref="RunHostStep.LinesBefore"/>.</summary>
    public async Task SaveAsync(int runId, string phaseKey, FleetHostStatus status, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var row = await db.Set<RunHostStep>().FirstOrDefaultAsync(h => h.RunId == runId && h.PhaseKey == phaseKey && h.Host == status.Label, ct);
        if (row is null)
        {
            row = new RunHostStep { RunId = runId, PhaseKey = phaseKey, Host = status.Label, Index = int.MaxValue };
            db.Add(row);
        }

        if (status.Attempt != row.Attempt)
        {
            row.LinesBefore += row.LinesStored;
        }

        row.State = status.State;
        row.Attempt = status.Attempt;
        row.LinesStored = status.LinesStored;
        row.StepMayBeRunning = status.StepMayBeRunning;
        row.ExitCode = status.ExitCode;
        row.Message = status.Message is { Length: > 2000 } text ? text[..2000] : status.Message;
        row.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
    }

    /// <summary>Each host's lines in the phase's stored log (all attempts): lines that start with its prefix.</summary>
    private static async Task<IReadOnlyDictionary<string, long>> CountLinesAsync(AppDbContext db, int runId, int phaseIndex, CancellationToken ct)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        var texts = db.RunLogChunks.AsNoTracking().Where(c => c.RunId == runId && c.PhaseIndex == phaseIndex).OrderBy(c => c.FirstSequence).Select(c => c.Text).AsAsyncEnumerable();
        await foreach (var text in texts.WithCancellation(ct))
        {
            foreach (var line in text.Split('\n'))
            {
                if (line.Length > 2 && line[0] == '[' && line.IndexOf("] ", StringComparison.Ordinal) is var end and > 1)
                {
                    var host = line[1..end];
                    counts[host] = counts.GetValueOrDefault(host) + 1;
                }
            }
        }

        return counts;
    }
}

/// <summary>
/// A fleet phase's hosts' lines into the run's log under the phase, with the host's prefix, one writer at a time; each
/// host's state change stored after its lines (so a restarted phase counts them in the log). Lines wait in the writer's
/// chunk while more come; once every host has been quiet for <see cref="RunLogPump.QuietFlush"/> (a service that takes
/// its time to start, a silent install) they are stored and shown, as a single host's step's are.
/// </summary>
public sealed class FleetPhaseLog : IFleetLog, IAsyncDisposable
{
    private readonly PhaseContext c;
    private readonly FleetPhaseStore store;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly CancellationTokenSource _stop;
    private readonly Task _quietFlushes;
    private bool _replayEnded;
    private long _lastWrite;

    public FleetPhaseLog(PhaseContext c, FleetPhaseStore store)
    {
        this.c = c;
        this.store = store;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(c.Cancellation);
        _quietFlushes = FlushWhenQuietAsync(_stop.Token);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _quietFlushes;
        }
        catch (OperationCanceledException)
        {
            // Stopped with the phase.
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A store that failed under a quiet flush: the writer fails the phase's own next write or flush with it, so
            // it is reported there (or the phase is ending on another error already, which this must not hide).
        }

        _stop.Dispose();
        _gate.Dispose();
    }

    public async ValueTask WriteAsync(FleetLogLine line, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (!_replayEnded)
            {
                // A resumed phase's header lines were matched against the stored ones; hosts' lines are never
                // matched that way (their stored ones were skipped by count), so the replay ends here.
                c.Log.Replay([]);
                _replayEnded = true;
            }

            await c.Log.WriteAsync(c.Phase, line.Prefixed, ct: cancellationToken);
            Volatile.Write(ref _lastWrite, Environment.TickCount64);
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask HostChangedAsync(FleetHostStatus status, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            await c.Log.FlushAsync(cancellationToken);
            await store.SaveAsync(c.Run.Id, c.Phase.Key, status, cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task FlushAsync()
    {
        await _gate.WaitAsync(c.Cancellation);
        try
        {
            await c.Log.FlushAsync(c.Cancellation);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Stores the pending lines once no line has come for <see cref="RunLogPump.QuietFlush"/>; a busy log is left to the writer's own chunking.</summary>
    private async Task FlushWhenQuietAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(RunLogPump.QuietFlush);
        while (await timer.WaitForNextTickAsync(ct))
        {
            if (!c.Log.HasPending || Environment.TickCount64 - Volatile.Read(ref _lastWrite) < RunLogPump.QuietFlush.TotalMilliseconds)
            {
                continue;
            }

            await _gate.WaitAsync(ct);
            try
            {
                if (c.Log.HasPending)
                {
                    await c.Log.FlushAsync(ct);
                }
            }
            finally
            {
                _gate.Release();
            }
        }
    }
}

/// <summary>A plan's snapshot for a runbook whose phases roll over many hosts: the batch size and the failures tolerated are chosen when planning.</summary>
public interface IRolloutSnapshot
{
    /// <summary>Hosts the rolling phases act on (the cluster less its manager), when the plan was made.</summary>
    int RollingHosts { get; }

    /// <summary>Whether a phase of the runbook rolls in batches (else only the failures tolerated apply).</summary>
    bool Rolls { get; }

    IRolloutSnapshot WithRollout(int batchSize, int failuresAllowed);
}

/// <summary>What a person chose for a rollout on the plan page, the API (batchSize, failuresAllowed) or the CLI; null: the runbook's default.</summary>
public sealed record RolloutChoice(int? BatchSize, int? FailuresAllowed)
{
    public bool IsEmpty => BatchSize is null && FailuresAllowed is null;

    /// <summary>The snapshot with the choice applied, or the refusal in one sentence.</summary>
    public (object? Snapshot, string? Error) ApplyTo(object snapshot)
    {
        if (IsEmpty)
        {
            return (snapshot, null);
        }

        if (snapshot is not IRolloutSnapshot rollout)
        {
            return (null, "A batch size and tolerated failures apply only to runbooks that roll over many hosts (Backend.AI).");
        }

        var hosts = Math.Max(1, rollout.RollingHosts);
        if (BatchSize is { } batch && (batch < 1 || batch > hosts))
        {
            return (null, $"The batch size must be between 1 and {hosts.ToString(System.Globalization.CultureInfo.InvariantCulture)} (the hosts the rollout acts on).");
        }

        if (BatchSize is not null && !rollout.Rolls)
        {
            return (null, "This runbook does not roll in batches (a major upgrade stops and starts every host at once): leave the batch size out.");
        }

        if (FailuresAllowed is { } failures && (failures < 0 || failures >= hosts))
        {
            return (null, $"The tolerated failures must be between 0 and {(hosts - 1).ToString(System.Globalization.CultureInfo.InvariantCulture)} (fewer than the hosts the rollout acts on).");
        }

        return (rollout.WithRollout(BatchSize ?? 0, FailuresAllowed ?? 0), null);
    }
}
