using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.Logging;

namespace UpgradeConsole.Core.Remote;

/// <summary>
/// A long-lived process on the target, one per connection (<c>step-helper.py</c>, python3 started over <c>sh -s</c>),
/// that starts steps and streams their logs without starting a program per step: a step over the shell path costs a
/// channel's shell, mkdir, setsid, the runner, the script's bash and tail on the target, and over the OpenSSH transport
/// an ssh process here too; through the helper only the runner and the bash remain. The files a step leaves are the
/// shell path's own (status, follow, cancel and reattach stay shell scripts and work on either kind), and a step keeps
/// running when the helper or its link dies. A target without python3 uses the shell path; so does a step whose
/// helper went away before it started (its start marker still makes it run at most once).
/// </summary>
#pragma warning disable CA1001 // Its semaphore is only ever waited on asynchronously (no wait handle to free); the helper lives as long as its connection.
internal sealed class StepHelper
#pragma warning restore CA1001
{
    /// <summary>A helper with no step in flight this long is ended (its process on the target exits at end of input).</summary>
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(60);

    private const string Ready = "UC:HELPER 1";
    private const string Missing = "UC:NO-HELPER";
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);
    private static readonly ConditionalWeakTable<object, Slot> Slots = new();
    private static readonly byte[] RunnerBytes = Utf8.GetBytes(StepScripts.RunnerFile);

    /// <summary>
    /// What the channel's <c>sh -s</c> runs. The shell reads this script only (the dashboard writes the first request
    /// after the helper said it is ready), then becomes python3, which reads the requests that follow on the same input.
    /// </summary>
    internal static readonly string Bootstrap =
        $"command -v python3 >/dev/null 2>&1 || {{ echo '{Missing}'; exit 0; }}\n" +
        "export UC_HELPER_PCL=\"${PYTHONCOERCECLOCALE--}\" PYTHONCOERCECLOCALE=0\n" +
        "exec python3 -S -c " + ShellWords.Quote(ReadProgram()) + "\n";

    private readonly IRemoteSession _session;
    private readonly PipeReader _output;
    private readonly Slot _slot;
    private readonly ILogger _logger;
    private readonly string _destination;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly ConcurrentDictionary<long, HelperStep> _steps = new();
    private readonly Lock _idleLock = new();
    private long _nextId;
    private int _active;
    private ITimer? _idle;
    private volatile bool _dead;

    private StepHelper(IRemoteSession session, PipeReader output, Slot slot, ILogger logger, string destination)
    {
        _session = session;
        _output = output;
        _slot = slot;
        _logger = logger;
        _destination = destination;
        ArmIdleTimer();
        _ = Task.Run(ReadLoopAsync);
    }

    private bool IsAlive => !_dead;

    /// <summary>The helper of the shell's connection, started when needed; null when the target has none (no python3) or it cannot start now.</summary>
    public static async Task<StepHelper?> ForAsync(IRemoteShell shell, TimeProvider time, ILogger logger, CancellationToken cancellationToken)
    {
        if (shell.Connection is not { } key)
        {
            return null;
        }

        var slot = Slots.GetValue(key, _ => new Slot());
        if (slot.Current is { IsAlive: true } current)
        {
            return current;
        }

        await slot.Gate.WaitAsync(cancellationToken);
        try
        {
            if (slot.Current is { IsAlive: true } started)
            {
                return started;
            }

            if (time.GetUtcNow() < slot.UnavailableUntil)
            {
                return null;
            }

            return slot.Current = await StartAsync(shell, slot, time, logger, cancellationToken);
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    private static async Task<StepHelper?> StartAsync(IRemoteShell shell, Slot slot, TimeProvider time, ILogger logger, CancellationToken cancellationToken)
    {
        IRemoteSession? session;
        try
        {
            session = await shell.OpenSessionAsync(Bootstrap, cancellationToken);
        }
        catch (SshConnectionException)
        {
            // Unreachable now: the shell path says why in the step's own terms.
            return null;
        }

        if (session is null)
        {
            slot.UnavailableUntil = DateTimeOffset.MaxValue;
            return null;
        }

        var output = PipeReader.Create(session.Output, new StreamPipeReaderOptions(bufferSize: 64 * 1024));
        string? first = null;
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            first = await ReadLineAsync(output, limit.Token);
        }
        catch (Exception ex) when (ex is IOException or SshConnectionException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // Below: not ready.
        }

        if (first == Ready)
        {
            return new StepHelper(session, output, slot, logger, shell.Destination);
        }

        await output.CompleteAsync();
        await session.DisposeAsync();
        // No python3 on the target: the shell path for a while. Anything else (a slow or broken start): try again soon.
        slot.UnavailableUntil = time.GetUtcNow() + (first == Missing ? TimeSpan.FromMinutes(10) : TimeSpan.FromSeconds(30));
        logger.LogInformation("No step helper on {Destination} ({Reason}); its steps start through the shell", shell.Destination, first ?? "no answer");
        return null;
    }

    /// <summary>Starts <paramref name="step"/> and follows it: the result reads like the shell path's start-and-follow command.</summary>
    /// <exception cref="SshConnectionException">The helper is gone; the step was not sent.</exception>
    public async Task<IRemoteProcess> StartAsync(RemoteStep step, CancellationToken cancellationToken)
    {
        byte[][] fields =
        [
            Utf8.GetBytes(step.Location.RunsDirectory),
            Utf8.GetBytes(step.Location.ToString()),
            Utf8.GetBytes(StepScripts.TimeoutSeconds(step)),
            Utf8.GetBytes(step.RunAsUser ?? ""),
            RunnerBytes,
            Utf8.GetBytes(StepScripts.Payload(step)),
        ];
        var id = Interlocked.Increment(ref _nextId);
        var head = string.Create(CultureInfo.InvariantCulture, $"run {id} {string.Join(' ', fields.Select(f => f.Length))}\n");
        var request = new byte[Encoding.ASCII.GetByteCount(head) + fields.Sum(f => f.Length)];
        var at = Encoding.ASCII.GetBytes(head, request);
        foreach (var field in fields)
        {
            field.CopyTo(request, at);
            at += field.Length;
        }

        var running = new HelperStep(this, id);
        _steps[id] = running;
        Active(+1);
        try
        {
            ObjectDisposedException.ThrowIf(_dead, this);
            await SendAsync(request, cancellationToken);
        }
        catch (Exception ex)
        {
            var gone = Gone(ex);
            running.Fail(gone);
            if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw gone;
        }

        return running;
    }

    private SshConnectionException Gone(Exception? cause) =>
        new($"The step helper on {_destination} went away{(cause is null ? "" : ": " + cause.Message)}", cause?.Message, SshFailure.Lost);

    private async Task SendAsync(byte[] request, CancellationToken cancellationToken)
    {
        await _writeGate.WaitAsync(cancellationToken);
        try
        {
            await _session.Input.WriteAsync(request, CancellationToken.None);
            await _session.Input.FlushAsync(CancellationToken.None);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private async Task DropAsync(long id)
    {
        if (_dead)
        {
            return;
        }

        try
        {
            await SendAsync(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"drop {id}\n")), CancellationToken.None);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or SshConnectionException or InvalidOperationException or Renci.SshNet.Common.SshException)
        {
            // The helper is going away anyway.
        }
    }

    /// <summary>Counts steps in flight; the helper ends after <see cref="IdleTimeout"/> without one.</summary>
    private void Active(int delta)
    {
        lock (_idleLock)
        {
            _active += delta;
            if (_active == 0)
            {
                ArmIdleTimer();
            }
            else
            {
                _idle?.Dispose();
                _idle = null;
            }
        }
    }

    private void ArmIdleTimer()
    {
        lock (_idleLock)
        {
            _idle?.Dispose();
            _idle = TimeProvider.System.CreateTimer(_ => _ = EndIfIdleAsync(), null, IdleTimeout, Timeout.InfiniteTimeSpan);
        }
    }

    private async Task EndIfIdleAsync()
    {
        lock (_idleLock)
        {
            if (_active != 0 || _dead)
            {
                return;
            }

            _dead = true;
        }

        // End of input: the helper exits, and the read loop ends.
        await _session.DisposeAsync();
    }

    private async Task ReadLoopAsync()
    {
        Exception? failure = null;
        try
        {
            while (true)
            {
                var result = await _output.ReadAsync();
                var buffer = result.Buffer;
                while (TryReadFrame(ref buffer, out var id, out var kind, out var payload))
                {
                    if (_steps.TryGetValue(id, out var step))
                    {
                        await step.ReceiveAsync(kind, payload);
                    }
                }

                _output.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        _dead = true;
        if (ReferenceEquals(_slot.Current, this))
        {
            _slot.Current = null;
        }

        foreach (var step in _steps.Values)
        {
            step.Fail(Gone(failure));
        }

        _logger.LogDebug("The step helper on {Destination} ended ({Reason})", _destination, failure?.Message ?? "end of output");
        await _output.CompleteAsync();
        try
        {
            await _session.DisposeAsync();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or SshConnectionException or InvalidOperationException)
        {
            // Gone already.
        }
    }

    /// <summary>One <c>&lt;id&gt; &lt;kind&gt; &lt;length&gt;\n&lt;bytes&gt;</c> frame, if the buffer holds a whole one.</summary>
    private static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, out long id, out char kind, out ReadOnlySequence<byte> payload)
    {
        (id, kind, payload) = (0, '\0', default);
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryReadTo(out ReadOnlySequence<byte> header, (byte)'\n'))
        {
            return false;
        }

        var fields = Encoding.ASCII.GetString(header).Split(' ');
        if (fields.Length != 3 || fields[1].Length != 1
            || !long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out id)
            || !int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var length))
        {
            throw new InvalidDataException($"The step helper sent a malformed frame header: '{Encoding.ASCII.GetString(header)}'.");
        }

        if (reader.Remaining < length)
        {
            return false;
        }

        kind = fields[1][0];
        payload = reader.UnreadSequence.Slice(0, length);
        buffer = reader.UnreadSequence.Slice(length);
        return true;
    }

    private static async Task<string?> ReadLineAsync(PipeReader output, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await output.ReadAsync(cancellationToken);
            var reader = new SequenceReader<byte>(result.Buffer);
            if (reader.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n'))
            {
                var text = Utf8.GetString(line);
                output.AdvanceTo(reader.Position);
                return text;
            }

            output.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            if (result.IsCompleted)
            {
                return null;
            }
        }
    }

    private static string ReadProgram()
    {
        using var stream = typeof(StepHelper).Assembly.GetManifestResourceStream("UpgradeConsole.Core.Remote.step-helper.py")
            ?? throw new InvalidOperationException("The step helper's program is not embedded.");
        using var reader = new StreamReader(stream, Utf8);
        return reader.ReadToEnd();
    }

    /// <summary>What is kept per connection: its helper, or until when it has none.</summary>
    private sealed class Slot
    {
        public SemaphoreSlim Gate { get; } = new(1, 1);

        public StepHelper? Current { get; set; }

        public DateTimeOffset UnavailableUntil { get; set; }
    }

    /// <summary>One step through the helper, read like the shell path's process: log bytes out, its stderr text and exit code at the end.</summary>
    private sealed class HelperStep(StepHelper helper, long id) : IRemoteProcess
    {
        private readonly Pipe _log = new(new PipeOptions(pauseWriterThreshold: 4 * 1024 * 1024, resumeWriterThreshold: 2 * 1024 * 1024, useSynchronizationContext: false));
        private readonly StringBuilder _stderr = new();
        private readonly TaskCompletionSource<RemoteResult> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private Stream? _output;
        private int _ended;
        private bool _unread;

        public Stream Output => _output ??= _log.Reader.AsStream();

        public Task<RemoteResult> WaitAsync(CancellationToken cancellationToken) => _result.Task.WaitAsync(cancellationToken);

        public async ValueTask ReceiveAsync(char kind, ReadOnlySequence<byte> payload)
        {
            switch (kind)
            {
                case 'o' when !_unread:
                    foreach (var segment in payload)
                    {
                        _log.Writer.Write(segment.Span);
                    }

                    // Waits while the reader is 4 MiB behind: the helper's output, and so the helper, wait with it.
                    _unread = (await _log.Writer.FlushAsync()).IsCompleted;
                    break;
                case 'e':
                    _stderr.Append(Utf8.GetString(payload));
                    break;
                case 'x':
                    if (End())
                    {
                        var code = int.Parse(Encoding.ASCII.GetString(payload), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
                        await _log.Writer.CompleteAsync();
                        _result.TrySetResult(new RemoteResult(code, [], _stderr.ToString(), _clock.Elapsed));
                    }

                    break;
            }
        }

        public void Fail(Exception failure)
        {
            if (End())
            {
                _log.Writer.Complete(new IOException(failure.Message, failure));
                _result.TrySetException(failure);
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (End())
            {
                // Stopped following before the end: the step carries on, the helper stops reading its log. The writer
                // stays the read loop's alone (a pipe's writer is not for two threads); completing the reader below
                // makes whatever it still writes go nowhere.
                _result.TrySetCanceled();
                await helper.DropAsync(id);
            }

            await _log.Reader.CompleteAsync();
        }

        /// <summary>True for the first of end, failure and dispose: it takes the step out of the helper's count.</summary>
        private bool End()
        {
            if (Interlocked.Exchange(ref _ended, 1) != 0)
            {
                return false;
            }

            helper._steps.TryRemove(id, out _);
            helper.Active(-1);
            return true;
        }
    }
}
