namespace UpgradeConsole.Core.Remote;

/// <summary>What a finished remote command left behind.</summary>
public sealed record RemoteResult(int ExitCode, byte[] StandardOutput, string StandardError, TimeSpan Elapsed)
{
    public string Output => System.Text.Encoding.UTF8.GetString(StandardOutput);
}

/// <summary>A remote command still running, whose output is read as a stream.</summary>
public interface IRemoteProcess : IAsyncDisposable
{
    /// <summary>The command's standard output, byte for byte.</summary>
    Stream Output { get; }

    /// <summary>Completes when the command has ended; throws <see cref="SshConnectionException"/> if the link failed.</summary>
    Task<RemoteResult> WaitAsync(CancellationToken cancellationToken);
}

/// <summary>A remote command whose standard input stays open for more writes after its script (a long-lived helper's requests).</summary>
public interface IRemoteSession : IRemoteProcess
{
    /// <summary>The command's standard input, after the script; disposing it (or the session) sends end-of-file.</summary>
    Stream Input { get; }
}

/// <summary>A local end of a forward to a port (or socket) on the target's side; closed when disposed.</summary>
public interface IPortForward : IAsyncDisposable
{
    /// <summary>What a client gives as host: an address (TCP), or a directory holding a Unix socket (Npgsql's convention).</summary>
    string Host { get; }

    int Port { get; }
}

/// <summary>A forward that can say whether it still carries new connections, so that it may be kept and reused for a while.</summary>
public interface IReusablePortForward : IPortForward
{
    /// <summary>Its listener runs and the SSH link under it is up.</summary>
    bool IsOpen { get; }
}

/// <summary>
/// A shell on one target. The script always travels on the command's standard input to a fixed
/// <c>sh -s</c>: nothing a person typed is ever part of the command line. Implemented over the
/// system OpenSSH client and over SSH.NET; both pass the same contract tests against a real sshd.
/// </summary>
public interface IRemoteShell
{
    /// <summary>The remote command: a POSIX shell reading its script from standard input.</summary>
    const string RemoteCommand = "sh -s";

    /// <summary><c>user@host</c>, for messages.</summary>
    string Destination { get; }

    /// <summary>Runs <paramref name="script"/> and collects its output.</summary>
    Task<RemoteResult> RunAsync(string script, CancellationToken cancellationToken, TimeSpan? timeout = null);

    /// <summary>Starts <paramref name="script"/> and hands back its output as a stream.</summary>
    Task<IRemoteProcess> StartAsync(string script, CancellationToken cancellationToken);

    /// <summary>
    /// Forwards a local endpoint to <paramref name="remoteHost"/>:<paramref name="remotePort"/> as seen
    /// from the target (a host starting with '/' names a directory holding PostgreSQL's Unix socket).
    /// </summary>
    Task<IPortForward> ForwardAsync(string remoteHost, int remotePort, CancellationToken cancellationToken);

    /// <summary>
    /// The connection under this shell (shells are cheap views of one), for what is kept per connection, such as
    /// its step helper; null when there is nothing to key on.
    /// </summary>
    object? Connection => null;

    /// <summary>
    /// Starts <paramref name="script"/> like <see cref="StartAsync"/>, but leaves standard input open after it, for a
    /// program the script starts to read; null when the transport cannot.
    /// </summary>
    Task<IRemoteSession?> OpenSessionAsync(string script, CancellationToken cancellationToken) => Task.FromResult<IRemoteSession?>(null);
}

/// <summary>What both shells share.</summary>
public static class RemoteShells
{
    /// <summary>Starts <paramref name="script"/>, reads all its output and waits for its end; a time limit ends in <see cref="TimeoutException"/>.</summary>
    public static async Task<RemoteResult> CollectAsync(IRemoteShell shell, string script, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeout is { } limit)
        {
            timeoutSource.CancelAfter(limit);
        }

        try
        {
            await using var process = await shell.StartAsync(script, timeoutSource.Token);
            using var output = new MemoryStream();
            await process.Output.CopyToAsync(output, timeoutSource.Token);
            var result = await process.WaitAsync(timeoutSource.Token);
            return result with { StandardOutput = output.ToArray() };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"The command on {shell.Destination} did not finish within {timeout}.");
        }
    }
}
