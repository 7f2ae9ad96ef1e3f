using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace UpgradeConsole.Core.Remote;

/// <summary>
/// <see cref="IRemoteShell"/> over the system OpenSSH client. Every call reuses the target's
/// ControlMaster connection (created on first use), checks the host key against the pinned
/// known_hosts file only, and never prompts.
/// </summary>
public sealed class OpenSshShell(SshEndpoint endpoint) : IRemoteShell
{
    public SshEndpoint Endpoint { get; } = endpoint;

    public string Destination => Endpoint.Destination;

    public Task<RemoteResult> RunAsync(string script, CancellationToken cancellationToken, TimeSpan? timeout = null) =>
        RemoteShells.CollectAsync(this, script, timeout, cancellationToken);

    /// <summary>One key per ControlMaster socket: shells over the same master share what is kept per connection.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, object> Masters = new(StringComparer.Ordinal);

    object? IRemoteShell.Connection => Masters.GetOrAdd(Endpoint.ControlPath, _ => new object());

    public Task<IRemoteProcess> StartAsync(string script, CancellationToken cancellationToken) =>
        Task.FromResult<IRemoteProcess>(Begin(script, keepInput: false));

    /// <summary>One long-lived ssh process over the master, its standard input kept open after the script.</summary>
    public Task<IRemoteSession?> OpenSessionAsync(string script, CancellationToken cancellationToken) =>
        Task.FromResult<IRemoteSession?>(Begin(script, keepInput: true));

    private SshProcess Begin(string script, bool keepInput)
    {
        var start = new ProcessStartInfo("ssh")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var option in Endpoint.Options())
        {
            start.ArgumentList.Add(option);
        }

        start.ArgumentList.Add("--");
        start.ArgumentList.Add(Endpoint.Destination);
        start.ArgumentList.Add(IRemoteShell.RemoteCommand);
        var process = Process.Start(start) ?? throw new SshConnectionException("Could not start the ssh client.");
        return new SshProcess(process, script, Endpoint, keepInput);
    }

    /// <summary>
    /// Forwards a fresh local Unix socket through the target's ControlMaster (<c>ssh -O forward</c>);
    /// disposing the result cancels the forward and removes the socket. The socket lives in a directory
    /// of its own, so Npgsql is given that directory as Host.
    /// </summary>
    public async Task<IPortForward> ForwardAsync(string remoteHost, int remotePort, CancellationToken cancellationToken)
    {
        var port = remotePort.ToString(CultureInfo.InvariantCulture);
        var remote = remoteHost.StartsWith('/')
            ? $"{remoteHost.TrimEnd('/')}/.s.PGSQL.{port}"
            : $"{(remoteHost.Contains(':', StringComparison.Ordinal) ? $"[{remoteHost}]" : remoteHost)}:{port}";
        if (!remoteHost.StartsWith('/') && !HostNames.IsValid(remoteHost))
        {
            throw new ArgumentException($"'{remoteHost}' is not a host name or address.", nameof(remoteHost));
        }

        // The master must be up before it can take a forwarding request.
        await RunAsync("true", cancellationToken, Endpoint.ConnectTimeout + TimeSpan.FromSeconds(30));
        var dir = Path.Combine(Path.GetDirectoryName(Endpoint.ControlPath)!, "f" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)));
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("Forwarding through OpenSSH needs Unix sockets.");
        }

        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var spec = $"{Path.Combine(dir, ".s.PGSQL." + port)}:{remote}";
        var (code, error) = await ControlAsync("forward", spec, cancellationToken);
        if (code != 0)
        {
            Directory.Delete(dir, recursive: true);
            throw new SshConnectionException($"Could not forward to {remote} on {Destination}: {FirstLine(error)}", error);
        }

        return new SocketForward(this, dir, remotePort, spec);
    }

    /// <summary>Sends a control command (<c>-O forward|cancel|exit</c>) to the target's ControlMaster.</summary>
    private async Task<(int ExitCode, string Error)> ControlAsync(string command, string? forward, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("ssh") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        var arguments = new List<string> { "-o", "ControlPath=" + Endpoint.ControlPath, "-O", command };
        if (forward is not null)
        {
            arguments.AddRange(["-L", forward]);
        }

        arguments.Add("unused");
        foreach (var a in arguments)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start) ?? throw new SshConnectionException("Could not start the ssh client.");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = await process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        await output;
        return (process.ExitCode, error);
    }

    /// <summary>Ends the target's ControlMaster, if one runs (after a re-pin, an edit, or at shutdown).</summary>
    public async Task CloseAsync()
    {
        if (File.Exists(Endpoint.ControlPath))
        {
            await ControlAsync("exit", null, CancellationToken.None);
            File.Delete(Endpoint.ControlPath);
        }
    }

    private sealed class SocketForward(OpenSshShell shell, string directory, int port, string spec) : IPortForward
    {
        public string Host => directory;

        public int Port => port;

        public async ValueTask DisposeAsync()
        {
            await shell.ControlAsync("cancel", spec, CancellationToken.None);
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Turns ssh's exit status 255 into the right exception (one plain sentence); any other status is the command's own.</summary>
    internal static void ThrowIfConnectionFailed(int exitCode, string stderr, SshEndpoint endpoint)
    {
        if (exitCode == 255)
        {
            throw OpenSshErrors.Explain(stderr, endpoint);
        }
    }

    private static string FirstLine(string text)
    {
        var line = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        return string.IsNullOrEmpty(line) ? "the connection was closed" : line;
    }

    private sealed class SshProcess : IRemoteSession
    {
        private readonly Process _process;
        private readonly SshEndpoint _endpoint;
        private readonly Task<string> _stderr;
        private readonly Task _stdin;
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        public SshProcess(Process process, string script, SshEndpoint endpoint, bool keepInput)
        {
            _process = process;
            _endpoint = endpoint;
            _stderr = process.StandardError.ReadToEndAsync();
            _stdin = WriteScriptAsync(process, script, keepInput);
        }

        public Stream Output => _process.StandardOutput.BaseStream;

        public Stream Input => _process.StandardInput.BaseStream;

        public async Task<RemoteResult> WaitAsync(CancellationToken cancellationToken)
        {
            try
            {
                await _process.WaitForExitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                Kill();
                throw;
            }

            var stderr = await _stderr;
            await _stdin;
            ThrowIfConnectionFailed(_process.ExitCode, stderr, _endpoint);
            return new RemoteResult(_process.ExitCode, [], stderr, _clock.Elapsed);
        }

        public async ValueTask DisposeAsync()
        {
            Kill();
            try
            {
                await _process.WaitForExitAsync();
                await _stdin;
            }
            finally
            {
                _process.Dispose();
            }
        }

        private void Kill()
        {
            try
            {
                // Only ssh itself: a ControlMaster it forked must outlive it for the next step.
                if (!_process.HasExited)
                {
                    _process.Kill(entireProcessTree: false);
                }
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
        }

        private static async Task WriteScriptAsync(Process process, string script, bool keepInput)
        {
            try
            {
                var bytes = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(script);
                await process.StandardInput.BaseStream.WriteAsync(bytes);
                await process.StandardInput.BaseStream.FlushAsync();
                if (!keepInput)
                {
                    process.StandardInput.Close();
                }
            }
            catch (IOException)
            {
                // ssh ended before reading its input (connection refused, killed): WaitAsync reports why.
            }
        }
    }
}
