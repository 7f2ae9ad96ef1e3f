namespace UpgradeConsole.Core.Fleet;

/// <summary>Where one host of a fleet step stands.</summary>
public enum FleetHostState
{
    /// <summary>Its step was not started by this rollout (not yet, or the rollout stopped before it).</summary>
    Pending,

    /// <summary>Its step is being started or followed.</summary>
    Running,

    /// <summary>Its step exited 0.</summary>
    Succeeded,

    /// <summary>Its step exited non-zero, timed out, was cancelled, or ended without an exit code.</summary>
    Failed,

    /// <summary>The host could not be reached (before its step, or while following it: see <see cref="FleetHostStatus.StepMayBeRunning"/>).</summary>
    Unreachable,
}

/// <summary>One host's state in a fleet step; <see cref="Attempt"/> numbers its step directories (a retry after a failure is a new one).</summary>
public sealed record FleetHostStatus(
    string Label,
    FleetHostState State,
    int Attempt,
    long LinesStored,
    bool StepMayBeRunning,
    int? ExitCode,
    string? Message)
{
    /// <summary>A failure for the rollout's policy: failed or unreachable.</summary>
    public bool IsFailure => State is FleetHostState.Failed or FleetHostState.Unreachable;

    /// <summary>One sentence for the host grid and the run's log.</summary>
    public string Describe() => State switch
    {
        FleetHostState.Pending => $"{Label}: pending (not started)",
        FleetHostState.Running => $"{Label}: running (attempt {Attempt}, {LinesStored} line(s) so far)",
        FleetHostState.Succeeded => $"{Label}: succeeded (attempt {Attempt})",
        FleetHostState.Failed => $"{Label}: failed (attempt {Attempt}{(ExitCode is { } code ? $", exit code {code}" : "")}): {Message}",
        _ => StepMayBeRunning
            ? $"{Label}: unreachable in the middle of its step (attempt {Attempt}); the step may still be running there, and retrying this host reattaches to it: {Message}"
            : $"{Label}: unreachable, nothing was started there: {Message}",
    };
}

/// <summary>
/// The states of every host of one fleet step and the only transitions between them (thread-safe: hosts
/// report concurrently). Pending → Running → Succeeded | Failed | Unreachable; a failed or unreachable host can
/// be retried (Running again): after a failure in a new step directory, after an unreachable host in the same
/// one (its step may have started, and a step never starts twice).
/// </summary>
public sealed class FleetProgress
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, FleetHostStatus> _hosts = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];

    public FleetProgress(IEnumerable<string> labels)
        : this(labels.Select(l => new FleetHostStatus(l, FleetHostState.Pending, 1, 0, false, null, null)))
    {
    }

    /// <summary>Continues from stored states (e.g. after a dashboard restart): a host stored as running is reattached when started again.</summary>
    public FleetProgress(IEnumerable<FleetHostStatus> hosts)
    {
        ArgumentNullException.ThrowIfNull(hosts);
        foreach (var host in hosts)
        {
            if (string.IsNullOrWhiteSpace(host.Label))
            {
                throw new ArgumentException("A host needs a label.", nameof(hosts));
            }

            if (!_hosts.TryAdd(host.Label, host))
            {
                throw new ArgumentException($"The host '{host.Label}' is listed twice.", nameof(hosts));
            }

            _order.Add(host.Label);
        }
    }

    /// <summary>Every host in the order given.</summary>
    public IReadOnlyList<FleetHostStatus> Hosts
    {
        get
        {
            lock (_gate)
            {
                return [.. _order.Select(l => _hosts[l])];
            }
        }
    }

    public FleetHostStatus this[string label]
    {
        get
        {
            lock (_gate)
            {
                return Get(label);
            }
        }
    }

    /// <summary>Failed plus unreachable hosts, what a rollout's policy counts.</summary>
    public int Failures
    {
        get
        {
            lock (_gate)
            {
                return _hosts.Values.Count(h => h.IsFailure);
            }
        }
    }

    public int Count(FleetHostState state)
    {
        lock (_gate)
        {
            return _hosts.Values.Count(h => h.State == state);
        }
    }

    /// <summary>Whether starting a host that was <paramref name="previous"/> leads to reattaching an existing step rather than starting one.</summary>
    public static bool Reattaches(FleetHostStatus previous) =>
        previous.State is FleetHostState.Running || (previous.State is FleetHostState.Unreachable && previous.StepMayBeRunning);

    /// <summary>
    /// The host goes to Running. From Pending, or from Unreachable/Running (a step that may have started: same
    /// attempt, same directory, reattached), or from Failed (a new attempt in a new directory). Returns the status
    /// it had before. Running already (a host being followed by this process) and Succeeded are refused.
    /// </summary>
    public FleetHostStatus Begin(string label, bool reattachRunning = false)
    {
        lock (_gate)
        {
            var previous = Get(label);
            var next = previous.State switch
            {
                FleetHostState.Pending => previous with { State = FleetHostState.Running, StepMayBeRunning = false, ExitCode = null, Message = null },
                FleetHostState.Running when reattachRunning => previous,
                FleetHostState.Unreachable => previous with { State = FleetHostState.Running, ExitCode = null, Message = null },
                FleetHostState.Failed => previous with { State = FleetHostState.Running, Attempt = previous.Attempt + 1, LinesStored = 0, StepMayBeRunning = false, ExitCode = null, Message = null },
                _ => throw new InvalidOperationException(Refusal(previous, "start")),
            };
            _hosts[label] = next;
            return previous;
        }
    }

    /// <summary>The step has certainly started (a line arrived or the target said so): an interruption from now on leaves it mid-step.</summary>
    public FleetHostStatus Started(string label) => Change(label, "mark started", h => h with { StepMayBeRunning = true });

    /// <summary>One more of the host's lines is stored.</summary>
    public FleetHostStatus LineStored(string label) => Change(label, "store a line", h => h with { LinesStored = h.LinesStored + 1 });

    public FleetHostStatus Succeed(string label) =>
        Change(label, "succeed", h => h with { State = FleetHostState.Succeeded, StepMayBeRunning = false, ExitCode = 0, Message = null });

    public FleetHostStatus Fail(string label, int? exitCode, string message) =>
        Change(label, "fail", h => h with { State = FleetHostState.Failed, StepMayBeRunning = false, ExitCode = exitCode, Message = message });

    /// <summary>The host could not be reached; <paramref name="stepMayBeRunning"/> unless nothing was sent there.</summary>
    public FleetHostStatus Unreachable(string label, bool stepMayBeRunning, string message) =>
        Change(label, "be unreachable", h => h with { State = FleetHostState.Unreachable, StepMayBeRunning = stepMayBeRunning || h.StepMayBeRunning, ExitCode = null, Message = message });

    private FleetHostStatus Change(string label, string what, Func<FleetHostStatus, FleetHostStatus> change)
    {
        lock (_gate)
        {
            var previous = Get(label);
            if (previous.State != FleetHostState.Running)
            {
                throw new InvalidOperationException(Refusal(previous, what));
            }

            var next = change(previous);
            _hosts[label] = next;
            return next;
        }
    }

    private FleetHostStatus Get(string label) =>
        _hosts.TryGetValue(label, out var status) ? status : throw new KeyNotFoundException($"No host '{label}' in this fleet step.");

    private static string Refusal(FleetHostStatus previous, string what) => $"Host {previous.Label} cannot {what}: it is {previous.State.ToString().ToLowerInvariant()}.";
}
