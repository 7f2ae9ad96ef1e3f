using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace UpgradeConsole.Core.Remote;

/// <summary>Tuning of the remote engine.</summary>
public sealed record RemoteEngineOptions
{
    /// <summary>Longer lines are delivered in pieces of at most this many bytes.</summary>
    public int MaxLineBytes { get; init; } = 16 * 1024;

    /// <summary>Waits between attempts when the SSH link fails; their count bounds the retries.</summary>
    public IReadOnlyList<TimeSpan> RetryDelays { get; init; } =
        [TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(8), TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(30)];

    /// <summary>How long a cancelled step may take to end after TERM before it gets KILL.</summary>
    public TimeSpan CancelGrace { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time limit of the engine's own short control commands.</summary>
    public TimeSpan ControlTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Start and follow steps through the connection's step helper where the target has python3 (<see cref="StepHelper"/>);
    /// off, or without python3, every step goes through a shell command of its own.
    /// </summary>
    public bool UseStepHelper { get; init; } = true;
}

/// <summary>
/// Runs steps detached on a target and follows their logs by byte offset, so neither a dropped
/// SSH link nor a dashboard restart loses, repeats or re-runs anything: a step is started at most
/// once (its start marker), keeps running on its own, and any engine instance can pick up its log
/// from a stored offset and learn its exit code.
/// </summary>
public sealed class RemoteStepEngine(IRemoteShell shell, RemoteEngineOptions? options = null, TimeProvider? time = null, ILogger? logger = null)
{
    private readonly RemoteEngineOptions _options = options ?? new RemoteEngineOptions();
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ILogger _logger = logger ?? NullLogger.Instance;

    /// <summary>Starts the step detached and returns its process id on the target.</summary>
    /// <exception cref="StepAlreadyStartedException">Its start marker exists: it was started before.</exception>
    public async Task<int> StartAsync(RemoteStep step, CancellationToken cancellationToken)
    {
        // Not retried: if the link drops mid-start the step may or may not have started; the caller
        // asks GetStatusAsync, which tells from the start marker.
        var result = await shell.RunAsync(StepScripts.Start(step, parentsChecked: ParentsChecked(step.Location)), cancellationToken, _options.ControlTimeout);
        var pid = StartedPid(step.Location, result.ExitCode, result.StandardError)
            ?? throw new RemoteCommandException($"Could not start step {step.Location}: {result.StandardError.Trim()}", result.ExitCode, result.StandardError);
        MarkParentsChecked(step.Location);
        return pid;
    }

    public async Task<RemoteStepStatus> GetStatusAsync(StepLocation location, CancellationToken cancellationToken)
    {
        var result = await WithRetriesAsync(ct => shell.RunAsync(StepScripts.Status(location), ct, _options.ControlTimeout), cancellationToken);
        return ParseState(result.StandardError)
            ?? throw new RemoteCommandException($"Could not read the state of step {location}: {result.StandardError.Trim()}", result.ExitCode, result.StandardError);
    }

    /// <summary>
    /// Yields the step's log lines from <paramref name="fromOffset"/> (a line's <see cref="RemoteLogLine.NextOffset"/>,
    /// or 0) as they are written, and ends once the step has ended and its log is drained. A dropped
    /// link is retried with bounded backoff and the log resumes exactly where it stopped.
    /// </summary>
    public async IAsyncEnumerable<RemoteLogLine> FollowAsync(StepLocation location, long fromOffset, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var splitter = new LogLineSplitter(fromOffset, _options.MaxLineBytes);
        var stalls = 0;
        while (true)
        {
            var before = splitter.ConsumedOffset;
            var pass = new Pass();
            await foreach (var line in StreamAsync(ct => shell.StartAsync(StepScripts.Follow(location, before), ct), splitter, pass, cancellationToken))
            {
                yield return line;
            }

            if (pass.State is { State: RemoteStepState.NotStarted })
            {
                throw new StepNotStartedException($"Step {location} was never started on the target.");
            }

            if (pass.State is { State: RemoteStepState.Exited or RemoteStepState.Lost } ended && splitter.ConsumedOffset >= ended.LogSize)
            {
                if (splitter.Flush() is { } last)
                {
                    yield return last;
                }

                yield break;
            }

            if (splitter.ConsumedOffset > before)
            {
                stalls = 0;
                continue;
            }

            // The link dropped, or the stream ended without news while the step still runs.
            if (stalls >= _options.RetryDelays.Count)
            {
                throw pass.Failure ?? new SshConnectionException($"The log of {location} stopped arriving.");
            }

            _logger.LogWarning("Following {Step} was interrupted at offset {Offset} ({Reason}); retrying", location, splitter.ConsumedOffset, pass.Failure?.Message ?? "no new output");
            await Task.Delay(_options.RetryDelays[stalls++], _time, cancellationToken);
        }
    }

    /// <summary>Stops the step's whole process group: TERM, then KILL after the grace period.</summary>
    public async Task CancelAsync(StepLocation location, CancellationToken cancellationToken)
    {
        var result = await WithRetriesAsync(ct => shell.RunAsync(StepScripts.Cancel(location, _options.CancelGrace), ct, _options.CancelGrace + _options.ControlTimeout), cancellationToken);
        _logger.LogInformation("Cancel of {Step}: {Outcome}", location, result.Output.Trim());
    }

    /// <summary>
    /// Starts the step, hands every line to <paramref name="onLine"/>, and returns its final status.
    /// Start and log travel in one SSH session (or through the connection's step helper); if that breaks,
    /// following resumes from the last complete line as after a restart.
    /// </summary>
    public async Task<RemoteStepStatus> RunAsync(RemoteStep step, Func<RemoteLogLine, ValueTask> onLine, CancellationToken cancellationToken)
    {
        if (_options.UseStepHelper && await StepHelper.ForAsync(shell, _time, _logger, cancellationToken) is { } helper)
        {
            if (await RunOnceAsync(step, onLine, ct => helper.StartAsync(step, ct), lastTry: false, cancellationToken) is { } status)
            {
                return status;
            }

            // Its start marker is absent, so it never ran: the shell path may start it.
            _logger.LogInformation("The step helper on {Destination} went away before {Step} started; starting it through the shell", shell.Destination, step.Location);
        }

        return (await RunOnceAsync(step, onLine, ct => shell.StartAsync(StepScripts.StartAndFollow(step, ParentsChecked(step.Location)), ct), lastTry: true, cancellationToken))!;
    }

    /// <returns>The step's final status; null only when not <paramref name="lastTry"/> and the link failed before the step started.</returns>
    private async Task<RemoteStepStatus?> RunOnceAsync(RemoteStep step, Func<RemoteLogLine, ValueTask> onLine, Func<CancellationToken, Task<IRemoteProcess>> open, bool lastTry, CancellationToken cancellationToken)
    {
        var splitter = new LogLineSplitter(0, _options.MaxLineBytes);
        var pass = new Pass();
        await foreach (var line in StreamAsync(open, splitter, pass, cancellationToken))
        {
            await onLine(line);
        }

        if (pass.StandardError.Contains(StepScripts.Started, StringComparison.Ordinal))
        {
            MarkParentsChecked(step.Location);
        }

        if (pass.StandardError.Contains(StepScripts.AlreadyStarted, StringComparison.Ordinal))
        {
            throw new StepAlreadyStartedException($"Step {step.Location} was already started on the target; it is never started twice.");
        }

        if (pass.State is { State: RemoteStepState.Exited or RemoteStepState.Lost } ended && splitter.ConsumedOffset >= ended.LogSize)
        {
            if (splitter.Flush() is { } last)
            {
                await onLine(last);
            }

            return ended;
        }

        if (!pass.StandardError.Contains(StepScripts.Started, StringComparison.Ordinal)
            && (await GetStatusAsync(step.Location, cancellationToken)).State == RemoteStepState.NotStarted)
        {
            if (!lastTry && pass.Failure is not null)
            {
                return null;
            }

            throw pass.Failure ?? new RemoteCommandException($"Could not start step {step.Location}: {pass.StandardError.Trim()}", -1, pass.StandardError);
        }

        // The session broke mid-step: continue like a reattach, from the last whole line.
        _logger.LogWarning("The session of {Step} broke ({Reason}); reattaching at offset {Offset}", step.Location, pass.Failure?.Message ?? "no end state", splitter.LineStartOffset);
        await foreach (var line in FollowAsync(step.Location, splitter.LineStartOffset, cancellationToken))
        {
            await onLine(line);
        }

        return await GetStatusAsync(step.Location, cancellationToken);
    }

    /// <summary>
    /// Run directories found private by a start over a shell (a connection to one pinned host), for as long as the
    /// shell lives: later steps of the run skip the write-bit check, a process on the target (see StepScripts.Start).
    /// </summary>
    private static readonly ConditionalWeakTable<IRemoteShell, ConcurrentDictionary<string, bool>> CheckedRunDirectories = new();

    private bool ParentsChecked(StepLocation location) =>
        CheckedRunDirectories.TryGetValue(shell, out var checkedDirectories) && checkedDirectories.ContainsKey(RunDirectoryKey(location));

    private void MarkParentsChecked(StepLocation location) =>
        CheckedRunDirectories.GetValue(shell, _ => new ConcurrentDictionary<string, bool>(StringComparer.Ordinal))[RunDirectoryKey(location)] = true;

    private static string RunDirectoryKey(StepLocation location) => location.RunsDirectory + "\n" + location.RunId;

    /// <summary>Reads one session's stdout into lines; records its stderr, end state and any failure in <paramref name="pass"/>.</summary>
    private static async IAsyncEnumerable<RemoteLogLine> StreamAsync(Func<CancellationToken, Task<IRemoteProcess>> open, LogLineSplitter splitter, Pass pass, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        IRemoteProcess process;
        try
        {
            process = await open(cancellationToken);
        }
        catch (SshConnectionException ex) when (ex is not HostKeyMismatchException)
        {
            // Not connected (SSH.NET connects here): a pass that got nothing, retried like a dropped link.
            pass.Failure = ex;
            pass.StandardError = ex.StandardError ?? "";
            yield break;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(256 * 1024);
        var lines = new List<RemoteLogLine>(1024);
        try
        {
            while (true)
            {
                var read = await ReadAsync(process.Output, buffer, pass, cancellationToken);
                if (read <= 0)
                {
                    break;
                }

                lines.Clear();
                splitter.Push(buffer.AsSpan(0, read), lines);
                foreach (var line in lines)
                {
                    yield return line;
                }
            }

            try
            {
                var result = await process.WaitAsync(cancellationToken);
                pass.StandardError = result.StandardError;
                pass.State = ParseState(result.StandardError);
            }
            catch (SshConnectionException ex) when (ex is not HostKeyMismatchException)
            {
                pass.Failure = ex;
                pass.StandardError = ex.StandardError ?? "";
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            await process.DisposeAsync();
        }
    }

    private static async ValueTask<int> ReadAsync(Stream stream, byte[] buffer, Pass pass, CancellationToken cancellationToken)
    {
        try
        {
            return await stream.ReadAsync(buffer, cancellationToken);
        }
        catch (IOException ex)
        {
            pass.Failure = ex;
            return -1;
        }
    }

    private static int? StartedPid(StepLocation location, int exitCode, string stderr)
    {
        if (stderr.Contains(StepScripts.AlreadyStarted, StringComparison.Ordinal))
        {
            throw new StepAlreadyStartedException($"Step {location} was already started on the target; it is never started twice.");
        }

        var marker = stderr.Split('\n').FirstOrDefault(l => l.StartsWith(StepScripts.Started, StringComparison.Ordinal));
        return exitCode == 0 && marker is not null && int.TryParse(marker[(StepScripts.Started.Length + 1)..].Trim(), CultureInfo.InvariantCulture, out var pid)
            ? pid
            : null;
    }

    /// <summary>Reads the <c>UC:STATE</c> line the scripts print on stderr.</summary>
    internal static RemoteStepStatus? ParseState(string stderr)
    {
        var line = stderr.Split('\n').LastOrDefault(l => l.StartsWith("UC:STATE ", StringComparison.Ordinal));
        if (line is null)
        {
            return null;
        }

        var fields = line["UC:STATE ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1].Trim());
        if (fields.GetValueOrDefault("started") != "1")
        {
            return new RemoteStepStatus(RemoteStepState.NotStarted, null, 0, null, false, false);
        }

        int? exit = int.TryParse(fields.GetValueOrDefault("exit"), CultureInfo.InvariantCulture, out var code) ? code : null;
        int? pid = int.TryParse(fields.GetValueOrDefault("pid"), CultureInfo.InvariantCulture, out var p) ? p : null;
        var size = long.TryParse(fields.GetValueOrDefault("size"), CultureInfo.InvariantCulture, out var s) ? s : 0;
        var alive = fields.GetValueOrDefault("alive") == "1" || fields.GetValueOrDefault("starting") == "1";
        var state = exit is not null ? RemoteStepState.Exited : alive ? RemoteStepState.Running : RemoteStepState.Lost;
        return new RemoteStepStatus(state, exit, size, pid, fields.GetValueOrDefault("cancelled") == "1", fields.GetValueOrDefault("timedout") == "1");
    }

    private async Task<T> WithRetriesAsync<T>(Func<CancellationToken, Task<T>> action, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await action(cancellationToken);
            }
            catch (SshConnectionException ex) when (ex is not HostKeyMismatchException && attempt < _options.RetryDelays.Count)
            {
                _logger.LogWarning("SSH failed ({Reason}); retry {Attempt} of {Max}", ex.Message, attempt + 1, _options.RetryDelays.Count);
                await Task.Delay(_options.RetryDelays[attempt], _time, cancellationToken);
            }
        }
    }

    /// <summary>What one SSH session of following left behind.</summary>
    private sealed class Pass
    {
        public RemoteStepStatus? State { get; set; }

        public string StandardError { get; set; } = "";

        public Exception? Failure { get; set; }
    }
}
