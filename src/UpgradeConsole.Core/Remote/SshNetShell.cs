using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Renci.SshNet;
using Renci.SshNet.Common;

namespace UpgradeConsole.Core.Remote;

/// <summary>
/// <see cref="IRemoteShell"/> over SSH.NET: every command is a channel of the target's one
/// connection (<see cref="SshNetConnection"/>), so a step costs no local process and no handshake.
/// </summary>
public sealed class SshNetShell(SshNetConnection connection) : IRemoteShell
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    public SshNetConnection Connection { get; } = connection;

    public string Destination => Connection.Endpoint.Destination;

    public Task<RemoteResult> RunAsync(string script, CancellationToken cancellationToken, TimeSpan? timeout = null) =>
        RemoteShells.CollectAsync(this, script, timeout, cancellationToken);

    object? IRemoteShell.Connection => Connection;

    public async Task<IRemoteProcess> StartAsync(string script, CancellationToken cancellationToken) =>
        await BeginAsync(script, keepInput: false, cancellationToken);

    public async Task<IRemoteSession?> OpenSessionAsync(string script, CancellationToken cancellationToken) =>
        await BeginAsync(script, keepInput: true, cancellationToken);

    private async Task<ChannelProcess> BeginAsync(string script, bool keepInput, CancellationToken cancellationToken)
    {
        // A link that died since the last command is noticed only when a channel is opened on it:
        // reconnect once, then report.
        for (var attempt = 0; ; attempt++)
        {
            var client = await Connection.ClientAsync(cancellationToken);
            SshCommand? command = null;
            try
            {
                command = client.CreateCommand(IRemoteShell.RemoteCommand, Utf8);
                // Opening the channel and the exec request are two round trips SSH.NET waits for on its caller's thread.
                var begun = command;
                return await OwnThread.RunAsync("ssh-exec", () => ChannelProcess.Begin(begun, script, Destination, keepInput));
            }
            catch (Exception ex) when (IsLinkFailure(ex))
            {
                command?.Dispose();
                await Connection.ResetAsync();
                if (attempt >= 1)
                {
                    throw Lost(Destination, ex);
                }
            }
        }
    }

    /// <summary>
    /// A <see cref="ForwardedPortLocal"/> on 127.0.0.1 (a free port) to <paramref name="remoteHost"/>:<paramref name="remotePort"/>
    /// as the target sees it; stopped when disposed. SSH.NET cannot open OpenSSH's Unix-socket channels, so a
    /// socket directory is reached through a relay command on the target instead (<see cref="SocketRelay"/>).
    /// </summary>
    public async Task<IPortForward> ForwardAsync(string remoteHost, int remotePort, CancellationToken cancellationToken)
    {
        if (remoteHost.StartsWith('/'))
        {
            return SocketRelay.Start(this, $"{remoteHost.TrimEnd('/')}/.s.PGSQL.{remotePort.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
        }

        if (!HostNames.IsValid(remoteHost))
        {
            throw new ArgumentException($"'{remoteHost}' is not a host name or address.", nameof(remoteHost));
        }

        var client = await Connection.ClientAsync(cancellationToken);
        var forward = new ForwardedPortLocal("127.0.0.1", 0, remoteHost.Trim('[', ']'), (uint)remotePort);
        try
        {
            client.AddForwardedPort(forward);
            forward.Start();
        }
        catch (Exception ex) when (IsLinkFailure(ex))
        {
            forward.Dispose();
            throw Lost(Destination, ex);
        }

        return new TcpForward(client, forward);
    }

    internal static bool IsLinkFailure(Exception ex) =>
        ex is SshConnectionException or Renci.SshNet.Common.SshConnectionException or ObjectDisposedException or SocketException or IOException
            || (ex is SshException && ex is not SshAuthenticationException);

    internal static SshConnectionException Lost(string destination, Exception ex) =>
        ex as SshConnectionException ?? new SshConnectionException($"The SSH connection to {destination} was lost: {ex.Message}", ex.Message, SshFailure.Lost);

    private sealed class TcpForward(SshClient client, ForwardedPortLocal forward) : IReusablePortForward
    {
        public string Host => "127.0.0.1";

        public int Port => (int)forward.BoundPort;

        public bool IsOpen
        {
            get
            {
                try
                {
                    return forward.IsStarted && client.IsConnected;
                }
                catch (ObjectDisposedException)
                {
                    return false;
                }
            }
        }

        public ValueTask DisposeAsync()
        {
            try
            {
                forward.Stop();
                client.RemoveForwardedPort(forward);
            }
            catch (Exception ex) when (IsLinkFailure(ex) || ex is InvalidOperationException)
            {
                // The connection went away first: nothing is listening any more.
            }

            forward.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>One <c>sh -s</c> on a channel: the script on stdin (kept open after it for a session), stdout as a stream, stderr collected.</summary>
    private sealed class ChannelProcess : IRemoteSession
    {
        private readonly SshCommand _command;
        private readonly string _destination;
        private readonly Task _execution;
        private readonly Task<string> _stderr;
        private readonly Task _stdin;
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        private ChannelProcess(SshCommand command, string script, string destination, bool keepInput)
        {
            _command = command;
            _destination = destination;
            _execution = command.ExecuteAsync(CancellationToken.None);
            _stderr = ReadErrorsAsync(command);
            Output = new PumpedOutput(command.OutputStream);
            var input = command.CreateInputStream();
            Input = input;
            _stdin = WriteScriptAsync(input, script, keepInput);
        }

        public static ChannelProcess Begin(SshCommand command, string script, string destination, bool keepInput) => new(command, script, destination, keepInput);

        /// <summary>Standard input after the script (a session's; a plain command's is closed after its script).</summary>
        public Stream Input { get; }

        /// <summary>
        /// The command's stdout, pumped by a thread of its own (<see cref="PumpedOutput"/>): a read sees a cancellation
        /// even while the step prints nothing, and a waiting host holds no thread-pool thread.
        /// </summary>
        public Stream Output { get; }

        public async Task<RemoteResult> WaitAsync(CancellationToken cancellationToken)
        {
            try
            {
                await _execution.WaitAsync(cancellationToken);
            }
            catch (Exception ex) when (IsLinkFailure(ex))
            {
                throw Lost(_destination, ex);
            }

            var stderr = await _stderr;
            await _stdin;
            // A command ended by a signal has no exit status: 128 + signal, as a shell reports it.
            var code = _command.ExitStatus ?? (_command.ExitSignal is { } signal ? 128 + SignalNumber(signal) : -1);
            return new RemoteResult(code, [], stderr, _clock.Elapsed);
        }

        public async ValueTask DisposeAsync()
        {
            // Disposing closes the channel: the remote sh loses its pipes, as when ssh is killed.
            _command.Dispose();
            Output.Dispose();
            try
            {
                await _execution;
            }
            catch (Exception ex) when (IsLinkFailure(ex) || ex is OperationCanceledException)
            {
                // Ended by us or by the link: the caller already has what it needs.
            }

            try
            {
                await _stdin;
                await _stderr;
            }
            catch (Exception ex) when (IsLinkFailure(ex))
            {
                // Same.
            }
        }

        private static async Task WriteScriptAsync(Stream input, string script, bool keepInput)
        {
            try
            {
                await input.WriteAsync(Utf8.GetBytes(script));
                if (!keepInput)
                {
                    await input.DisposeAsync();
                }
            }
            catch (Exception ex) when (IsLinkFailure(ex) || ex is InvalidOperationException)
            {
                // The channel ended before reading its input: WaitAsync reports why.
            }
        }

        /// <summary>Reads stderr to its end on a thread of its own (SSH.NET's pipe only blocks: see <see cref="PumpedOutput"/>).</summary>
        private static Task<string> ReadErrorsAsync(SshCommand command)
        {
            var stream = command.ExtendedOutputStream;
            return OwnThread.RunAsync("ssh-stderr", () =>
            {
                try
                {
                    using var reader = new StreamReader(stream, Utf8);
                    return reader.ReadToEnd();
                }
                catch (Exception ex) when (IsLinkFailure(ex))
                {
                    return "";
                }
            });
        }

        private static int SignalNumber(string signal) => signal switch
        {
            "HUP" => 1,
            "INT" => 2,
            "QUIT" => 3,
            "KILL" => 9,
            "PIPE" => 13,
            "TERM" => 15,
            _ => 0,
        };
    }

    /// <summary>
    /// A local TCP port whose every connection becomes one command channel running a small relay on the
    /// target (python3, or socat) that connects to a Unix socket there. The command line is fixed text;
    /// the socket path travels as the first line of the channel's input.
    /// </summary>
    private sealed class SocketRelay : IPortForward
    {
        private const string Relay = """
            import os, select, socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.connect(sys.argv[1])
            fds = [0, s]
            while True:
                r = select.select(fds, [], [])[0]
                if 0 in r:
                    d = os.read(0, 65536)
                    if d:
                        s.sendall(d)
                    else:
                        s.shutdown(socket.SHUT_WR)
                        fds.remove(0)
                if s in r:
                    d = s.recv(65536)
                    if not d:
                        break
                    v = memoryview(d)
                    while v:
                        v = v[os.write(1, v):]
            """;

        private static readonly string Command = "sh -c " +
            ShellWords.Quote("IFS= read -r p || exit 1; if command -v python3 >/dev/null 2>&1; then exec python3 -c \"$0\" \"$p\"; fi; exec socat - \"UNIX-CONNECT:$p\"") +
            " " + ShellWords.Quote(Relay);

        private readonly SshNetShell _shell;
        private readonly string _path;
        private readonly System.Net.Sockets.TcpListener _listener = new(System.Net.IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _accepting;

        private SocketRelay(SshNetShell shell, string path)
        {
            _shell = shell;
            _path = path;
            _listener.Start();
            _accepting = AcceptAsync();
        }

        public string Host => "127.0.0.1";

        public int Port => ((System.Net.IPEndPoint)_listener.LocalEndpoint).Port;

        public static SocketRelay Start(SshNetShell shell, string path)
        {
            if (path.Contains('\n', StringComparison.Ordinal) || path.Contains('\0', StringComparison.Ordinal))
            {
                throw new ArgumentException("A socket path has no newline.", nameof(path));
            }

            return new SocketRelay(shell, path);
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            try
            {
                await _accepting;
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // Stopped.
            }

            _stop.Dispose();
        }

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                var socket = await _listener.AcceptSocketAsync(_stop.Token);
                _ = RelayAsync(socket);
            }
        }

        private async Task RelayAsync(Socket socket)
        {
            using var _ = socket;
            try
            {
                var client = await _shell.Connection.ClientAsync(_stop.Token);
                using var command = client.CreateCommand(Command, Utf8);
                var execution = command.ExecuteAsync(_stop.Token);
                var input = command.CreateInputStream();
                await input.WriteAsync(Utf8.GetBytes(_path + "\n"), _stop.Token);
                var up = UpAsync(socket, input);
                await command.OutputStream.CopyToAsync(new NetworkStream(socket, ownsSocket: false), _stop.Token);
                socket.Shutdown(SocketShutdown.Send);
                await Task.WhenAll(up, execution);
            }
            catch (Exception ex) when (IsLinkFailure(ex) || ex is OperationCanceledException or InvalidOperationException)
            {
                // The client, the link or the relay went away: the client sees its connection close.
            }
        }

        private static async Task UpAsync(Socket socket, Stream input)
        {
            await using (input)
            {
                var buffer = new byte[64 * 1024];
                try
                {
                    int read;
                    while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
                    {
                        await input.WriteAsync(buffer.AsMemory(0, read));
                    }
                }
                catch (Exception ex) when (IsLinkFailure(ex))
                {
                    // Closed by either side.
                }
            }
        }
    }
}
