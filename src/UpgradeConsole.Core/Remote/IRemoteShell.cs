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

/// <summary>
/// A shell on one target. The script always travels on the command's standard input to a fixed
/// <c>sh -s</c>: nothing a person typed is ever part of the command line. The seam between the
/// engine and OpenSSH (tests run it against a real sshd).
/// </summary>
public interface IRemoteShell
{
    /// <summary>Runs <paramref name="script"/> and collects its output.</summary>
    Task<RemoteResult> RunAsync(string script, CancellationToken cancellationToken, TimeSpan? timeout = null);

    /// <summary>Starts <paramref name="script"/> and hands back its output as a stream.</summary>
    IRemoteProcess Start(string script);
}
