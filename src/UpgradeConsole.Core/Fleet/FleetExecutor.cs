using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Core.Fleet;

/// <summary>
/// One host of a fleet: its label (unique in the fleet, shown as the log prefix), its shell (one pinned connection) and
/// what only this host's step needs (its Python, its service commands), added to the step's environment.
/// </summary>
public sealed record FleetHost(string Label, IRemoteShell Shell)
{
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();
}

/// <summary>The step every host runs, detached, through <see cref="RemoteStepEngine"/>; each host has its own step directory.</summary>
public sealed record FleetStep
{
    public required string RunId { get; init; }

    public required string StepId { get; init; }

    public required string Script { get; init; }

    public string RunsDirectory { get; init; } = StepLocation.DefaultRunsDirectory;

    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    public string? WorkingDirectory { get; init; }

    public TimeSpan? Timeout { get; init; }

    public string? RunAsUser { get; init; }
}

/// <summary>One line of one host's step: <see cref="Sequence"/> counts the host's lines of this attempt from 1.</summary>
public sealed record FleetLogLine(string Host, int Attempt, long Sequence, RemoteLogLine Line)
{
    /// <summary>The line as the run's overall log shows it: <c>[host] text</c>.</summary>
    public string Prefixed => Prefix(Host) + Line.Text;

    public static string Prefix(string host) => "[" + host + "] ";
}

/// <summary>
/// Where hosts' lines go (the run's log). Called concurrently for different hosts; one host's lines arrive in
/// order, one call at a time. A line counts as stored once the call returns: the host's count of stored lines
/// moves with it, and a reattach skips exactly that many.
/// </summary>
public interface IFleetLog
{
    ValueTask WriteAsync(FleetLogLine line, CancellationToken cancellationToken);

    /// <summary>
    /// A host's state changed (started, reattached, succeeded, failed, unreachable): where the rollout keeps its
    /// progress across a restart. Awaited before the host goes on, after every line it reported before the change
    /// was written; the default keeps nothing.
    /// </summary>
    ValueTask HostChangedAsync(FleetHostStatus status, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}

public sealed record FleetOptions
{
    /// <summary>Hosts whose step runs at the same time, at most.</summary>
    public int MaxConcurrency { get; init; } = 50;

    public FleetBatchSize Batch { get; init; } = FleetBatchSize.All;

    public FleetFailurePolicy Policy { get; init; } = FleetFailurePolicy.StopAtFirstFailure;

    public RemoteEngineOptions Engine { get; init; } = new();

    /// <summary>Told every change of a host's state (for the host grid); called on the host's task, keep it short.</summary>
    public Action<FleetHostStatus>? OnHostChanged { get; init; }
}

/// <summary>What a rollout ended with.</summary>
public sealed record FleetOutcome(bool Stopped, int Batches, int BatchesRun, IReadOnlyList<FleetHostStatus> Hosts)
{
    public bool Succeeded => Hosts.All(h => h.State == FleetHostState.Succeeded);

    /// <summary>Hosts per state, in the states' order, the states with none left out: "3 succeeded, 1 failed".</summary>
    public static string Counts(IEnumerable<FleetHostStatus> hosts)
    {
        var list = hosts.ToList();
        return string.Join(", ", Enum.GetValues<FleetHostState>()
            .Select(s => (State: s, Count: list.Count(h => h.State == s)))
            .Where(c => c.Count > 0)
            .Select(c => $"{c.Count} {c.State.ToString().ToLowerInvariant()}"));
    }

    /// <summary>One line: counts per state, and why the rollout stopped.</summary>
    public string Summary
    {
        get
        {
            var counts = Counts(Hosts);
            var midStep = Hosts.Where(h => h.State == FleetHostState.Unreachable && h.StepMayBeRunning).Select(h => h.Label).ToList();
            var stop = Stopped
                ? $"; stopped after batch {BatchesRun} of {Batches}: too many hosts failed ({string.Join(", ", Hosts.Where(h => h.IsFailure).Select(h => h.Label))})"
                : "";
            var unknown = midStep.Count > 0 ? $"; the step may still be running on {string.Join(", ", midStep)} (unreachable mid-step)" : "";
            return $"{Hosts.Count} host(s): {counts}{stop}{unknown}.";
        }
    }
}

/// <summary>
/// Runs one step on many hosts: rolling batches, at most <see cref="FleetOptions.MaxConcurrency"/> hosts at a time,
/// each host's step detached through the same <see cref="RemoteStepEngine"/> as a single target (a start marker per
/// host: nothing starts twice; a restarted dashboard reattaches per host), each host's lines to <see cref="IFleetLog"/>
/// with its label. A failed or unreachable host counts against the policy; when it says stop, hosts already running
/// finish and no other host starts. One host can be retried alone.
/// </summary>
public sealed class FleetExecutor : IDisposable
{
    private readonly IReadOnlyList<FleetHost> _hosts;
    private readonly Dictionary<string, FleetHost> _byLabel;
    private readonly FleetStep _step;
    private readonly IFleetLog _log;
    private readonly FleetOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _slots;

    public FleetExecutor(IReadOnlyList<FleetHost> hosts, FleetStep step, IFleetLog log, FleetOptions? options = null, FleetProgress? progress = null, TimeProvider? time = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(hosts);
        _hosts = hosts;
        _byLabel = hosts.ToDictionary(h => h.Label, StringComparer.Ordinal);
        _step = step ?? throw new ArgumentNullException(nameof(step));
        _log = log ?? throw new ArgumentNullException(nameof(log));
        _options = options ?? new FleetOptions();
        if (_options.MaxConcurrency < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), _options.MaxConcurrency, "At least one host must be able to run.");
        }

        Progress = progress ?? new FleetProgress(hosts.Select(h => h.Label));
        if (Progress.Hosts.Count != hosts.Count || hosts.Any(h => !Progress.Hosts.Any(p => p.Label == h.Label)))
        {
            throw new ArgumentException("The stored progress names other hosts than the fleet.", nameof(progress));
        }

        // Fails early on a step id the hosts' directories could not carry.
        _ = Location(_step, hosts.Count > 0 ? hosts[0].Label : "h", 1);
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _slots = new SemaphoreSlim(_options.MaxConcurrency, _options.MaxConcurrency);
    }

    public FleetProgress Progress { get; }

    public void Dispose() => _slots.Dispose();

    /// <summary>
    /// The rollout: batch by batch, in the hosts' order, each pending host of a batch started as a slot frees up
    /// (hosts found running in stored progress are reattached). Hosts that already succeeded are skipped; failed or
    /// unreachable ones stay so (retry them one by one) and count against the policy. Run it again after a stop
    /// (e.g. after retrying the failed host) to continue with the hosts still pending.
    /// </summary>
    public async Task<FleetOutcome> RunAsync(CancellationToken cancellationToken)
    {
        var batches = FleetBatches.Split(_hosts, _options.Batch);
        var run = 0;
        foreach (var batch in batches)
        {
            if (_options.Policy.MustStop(Progress.Failures))
            {
                return new FleetOutcome(true, batches.Count, run, Progress.Hosts);
            }

            var work = batch.Where(h => Progress[h.Label].State is FleetHostState.Pending or FleetHostState.Running).ToList();
            if (work.Count == 0)
            {
                run++;
                continue;
            }

            run++;
            await Task.WhenAll(work.Select(h => RunInSlotAsync(h, stopWhenPolicySays: true, cancellationToken)));
        }

        return new FleetOutcome(_options.Policy.MustStop(Progress.Failures) && Progress.Count(FleetHostState.Pending) > 0, batches.Count, run, Progress.Hosts);
    }

    /// <summary>
    /// A rollout taken up again after it stopped (a person retried the phase): every failed or unreachable host is
    /// run again first (at most <see cref="FleetOptions.MaxConcurrency"/> at a time: a failed one in a new step
    /// directory, an unreachable one reattached), then the rollout goes on with the hosts still pending, under the policy.
    /// </summary>
    public async Task<FleetOutcome> RetryFailedThenRunAsync(CancellationToken cancellationToken)
    {
        var failed = Progress.Hosts.Where(h => h.IsFailure).Select(h => _byLabel[h.Label]).ToList();
        await Task.WhenAll(failed.Select(h => RunInSlotAsync(h, stopWhenPolicySays: false, cancellationToken)));
        return await RunAsync(cancellationToken);
    }

    /// <summary>Where the hosts stand, as an outcome (after <see cref="RetryHostAsync"/>): stopped while any host is still pending.</summary>
    public FleetOutcome Current()
    {
        var batches = FleetBatches.Split(_hosts, _options.Batch).Count;
        var hosts = Progress.Hosts;
        return new FleetOutcome(hosts.Any(h => h.State == FleetHostState.Pending), batches, batches, hosts);
    }

    /// <summary>
    /// Runs <paramref name="label"/> alone, whatever the policy: a failed host in a new step directory, an unreachable one
    /// reattached to the step it may have started (never started twice), a pending one started.
    /// </summary>
    public async Task<FleetHostStatus> RetryHostAsync(string label, CancellationToken cancellationToken)
    {
        var host = _byLabel.TryGetValue(label, out var h) ? h : throw new KeyNotFoundException($"No host '{label}' in this fleet step.");
        await RunInSlotAsync(host, stopWhenPolicySays: false, cancellationToken);
        return Progress[label];
    }

    /// <summary>Where <paramref name="host"/>'s step of <paramref name="attempt"/> lives on it.</summary>
    public static StepLocation Location(FleetStep step, string host, int attempt)
    {
        ArgumentNullException.ThrowIfNull(step);
        var id = step.StepId + "." + HostId(host) + (attempt > 1 ? ".a" + attempt.ToString(System.Globalization.CultureInfo.InvariantCulture) : "");
        return new StepLocation(step.RunsDirectory, step.RunId, id);
    }

    /// <summary>A host label as a step-id part: kept when it is already one (short, plain), else made plain and told apart by a hash.</summary>
    public static string HostId(string label)
    {
        ArgumentNullException.ThrowIfNull(label);
        var plain = new string([.. label.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_')]);
        if (plain == label && label.Length <= 40)
        {
            return label;
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(label)))[..10];
        return (plain.Length > 29 ? plain[..29] : plain) + "-" + hash;
    }

    private async Task RunInSlotAsync(FleetHost host, bool stopWhenPolicySays, CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken);
        try
        {
            if (stopWhenPolicySays && _options.Policy.MustStop(Progress.Failures) && Progress[host.Label].State == FleetHostState.Pending)
            {
                // Another host's failure stopped the rollout while this one waited for a slot: it is not started.
                return;
            }

            await RunHostAsync(host, cancellationToken);
        }
        finally
        {
            _slots.Release();
        }
    }

    private async Task RunHostAsync(FleetHost host, CancellationToken cancellationToken)
    {
        var label = host.Label;
        var before = Progress.Begin(label, reattachRunning: true);
        var reattach = FleetProgress.Reattaches(before);
        var current = Progress[label];
        await ChangedAsync(current, cancellationToken);
        var attempt = current.Attempt;
        var location = Location(_step, label, attempt);
        var engine = new RemoteStepEngine(host.Shell, _options.Engine, _time, _logger);
        var sequence = current.LinesStored;
        var skip = reattach ? current.LinesStored : 0;
        var sent = false;

        async ValueTask OnLine(RemoteLogLine line)
        {
            if (skip > 0)
            {
                // Stored before the interruption: the log of this attempt is read again from its start (ADR 0019).
                skip--;
                return;
            }

            if (sequence == current.LinesStored && !Progress[label].StepMayBeRunning)
            {
                await ChangedAsync(Progress.Started(label), cancellationToken);
            }

            await _log.WriteAsync(new FleetLogLine(label, attempt, ++sequence, line), cancellationToken);
            Progress.LineStored(label);
        }

        try
        {
            if (host.Shell is SshNetShell sshNet)
            {
                // Connect first (a cached connection costs nothing): a host that cannot be reached here was sent nothing.
                await sshNet.Connection.ClientAsync(cancellationToken);
            }

            sent = true;
            RemoteStepStatus status;
            if (!reattach)
            {
                try
                {
                    status = await engine.RunAsync(Step(host, location), OnLine, cancellationToken);
                }
                catch (StepAlreadyStartedException)
                {
                    // Started by an earlier process whose progress was not stored: follow it from its start instead.
                    _logger.LogWarning("Step {Step} on {Host} was already started; reattaching", location, label);
                    skip = current.LinesStored;
                    sequence = current.LinesStored;
                    status = await FollowAsync(engine, location, OnLine, cancellationToken);
                }
            }
            else
            {
                try
                {
                    status = await FollowAsync(engine, location, OnLine, cancellationToken);
                }
                catch (StepNotStartedException)
                {
                    // Unreachable before its start arrived: start it now (the marker still guards against a second start).
                    status = await engine.RunAsync(Step(host, location), OnLine, cancellationToken);
                }
            }

            await ChangedAsync(Finish(label, status), cancellationToken);
        }
        catch (HostKeyMismatchException ex)
        {
            await ChangedAsync(Progress.Unreachable(label, sent, ex.Message), cancellationToken);
        }
        catch (SshConnectionException ex)
        {
            await ChangedAsync(Progress.Unreachable(label, sent, ex.Message), cancellationToken);
        }
        catch (StepAlreadyStartedException ex)
        {
            await ChangedAsync(Progress.Fail(label, null, ex.Message), cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The dashboard is stopping: the host stays running in the progress (its step carries on detached) and is
            // reattached by whoever continues the rollout.
            throw;
        }
        catch (Exception ex) when (ex is RemoteCommandException or IOException or TimeoutException or StepNotStartedException)
        {
            await ChangedAsync(Progress.Unreachable(label, sent, ex.Message), cancellationToken);
        }
    }

    private FleetHostStatus Finish(string label, RemoteStepStatus status) => status switch
    {
        { State: RemoteStepState.Exited, ExitCode: 0 } => Progress.Succeed(label),
        { State: RemoteStepState.Exited, TimedOut: true } => Progress.Fail(label, status.ExitCode, "the step ran out of time and was stopped"),
        { State: RemoteStepState.Exited, Cancelled: true } => Progress.Fail(label, status.ExitCode, "the step was cancelled"),
        { State: RemoteStepState.Exited } => Progress.Fail(label, status.ExitCode, $"the step exited with {status.ExitCode}"),
        { State: RemoteStepState.Lost } => Progress.Fail(label, null, "the step's process ended without an exit code (host rebooted or process killed): its outcome is unknown"),
        _ => Progress.Unreachable(label, true, $"the step was still {status.State.ToString().ToLowerInvariant()} when following it ended"),
    };

    private static async Task<RemoteStepStatus> FollowAsync(RemoteStepEngine engine, StepLocation location, Func<RemoteLogLine, ValueTask> onLine, CancellationToken cancellationToken)
    {
        await foreach (var line in engine.FollowAsync(location, 0, cancellationToken))
        {
            await onLine(line);
        }

        return await engine.GetStatusAsync(location, cancellationToken);
    }

    private RemoteStep Step(FleetHost host, StepLocation location) => new()
    {
        Location = location,
        Script = _step.Script,
        Environment = host.Environment.Count == 0 ? _step.Environment : new Dictionary<string, string>(_step.Environment.Concat(host.Environment).GroupBy(e => e.Key).Select(g => g.Last())),
        WorkingDirectory = _step.WorkingDirectory,
        Timeout = _step.Timeout,
        RunAsUser = _step.RunAsUser,
    };

    private async Task ChangedAsync(FleetHostStatus status, CancellationToken cancellationToken)
    {
        _logger.LogInformation("Fleet step {Step}: {Host}", _step.StepId, status.Describe());
        _options.OnHostChanged?.Invoke(status);
        await _log.HostChangedAsync(status, cancellationToken);
    }
}
