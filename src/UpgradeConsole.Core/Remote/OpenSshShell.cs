using System.Diagnostics;
using System.Text;

namespace UpgradeConsole.Core.Remote;

/// <summary>
/// <see cref="IRemoteShell"/> over the system OpenSSH client. Every call reuses the target's
/// ControlMaster connection (created on first use), checks the host key against the pinned
/// known_hosts file only, and never prompts.
/// </summary>
public sealed class OpenSshShell(SshEndpoint endpoint) : IRemoteShell
{
    /// <summary>The remote command: a POSIX shell reading its script from standard input.</summary>
    public const string RemoteCommand = "sh -s";

    public SshEndpoint Endpoint { get; } = endpoint;

    public async Task<RemoteResult> RunAsync(string script, CancellationToken cancellationToken, TimeSpan? timeout = null)
    {
        await using var process = (SshProcess)Start(script);
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeout is { } limit)
        {
            timeoutSource.CancelAfter(limit);
        }

        using var output = new MemoryStream();
        try
        {
            await process.Output.CopyToAsync(output, timeoutSource.Token);
            var result = await process.WaitAsync(timeoutSource.Token);
            return result with { StandardOutput = output.ToArray() };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"The command on {Endpoint.Destination} did not finish within {timeout}.");
        }
    }

    public IRemoteProcess Start(string script)
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
        start.ArgumentList.Add(RemoteCommand);
        var process = Process.Start(start) ?? throw new SshConnectionException("Could not start the ssh client.");
        return new SshProcess(process, script, Endpoint.Destination);
    }

    /// <summary>Turns ssh's exit status 255 into the right exception; any other status is the command's own.</summary>
    internal static void ThrowIfConnectionFailed(int exitCode, string stderr, string destination)
    {
        if (exitCode != 255)
        {
            return;
        }

        if (stderr.Contains("Host key verification failed", StringComparison.Ordinal)
            || stderr.Contains("REMOTE HOST IDENTIFICATION HAS CHANGED", StringComparison.Ordinal))
        {
            throw new HostKeyMismatchException(
                $"{destination} did not present the pinned host key. This can be a man-in-the-middle attack; " +
                "nothing will run on this target until an Admin checks the new key and pins it again.", stderr);
        }

        throw new SshConnectionException($"SSH to {destination} failed: {FirstLine(stderr)}", stderr);
    }

    private static string FirstLine(string text)
    {
        var line = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        return string.IsNullOrEmpty(line) ? "the connection was closed" : line;
    }

    private sealed class SshProcess : IRemoteProcess
    {
        private readonly Process _process;
        private readonly string _destination;
        private readonly Task<string> _stderr;
        private readonly Task _stdin;
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        public SshProcess(Process process, string script, string destination)
        {
            _process = process;
            _destination = destination;
            _stderr = process.StandardError.ReadToEndAsync();
            _stdin = WriteScriptAsync(process, script);
        }

        public Stream Output => _process.StandardOutput.BaseStream;

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
            ThrowIfConnectionFailed(_process.ExitCode, stderr, _destination);
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

        private static async Task WriteScriptAsync(Process process, string script)
        {
            try
            {
                var bytes = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(script);
                await process.StandardInput.BaseStream.WriteAsync(bytes);
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // ssh ended before reading its input (connection refused, killed): WaitAsync reports why.
            }
        }
    }
}
