namespace UpgradeConsole.Core.Remote;

/// <summary>Why a connection failed, for tests and for callers that treat some causes differently.</summary>
public enum SshFailure
{
    Other,

    /// <summary>The host name did not resolve.</summary>
    Dns,

    /// <summary>Nothing accepted the connection (refused, no route).</summary>
    Unreachable,

    /// <summary>No answer in time.</summary>
    Timeout,

    /// <summary>The private key itself is unusable (format, passphrase).</summary>
    BadKey,

    /// <summary>The server refused the key.</summary>
    KeyRefused,

    /// <summary>The server presented a key other than the pinned one.</summary>
    HostKeyChanged,

    /// <summary>An established link broke.</summary>
    Lost,
}

/// <summary>The SSH connection could not be made or was lost (ssh exited with 255). Usually worth retrying.</summary>
public class SshConnectionException(string message, string? stderr = null, SshFailure failure = SshFailure.Other) : Exception(message)
{
    /// <summary>What ssh printed (or SSH.NET said), for the operator.</summary>
    public string? StandardError { get; } = stderr;

    public SshFailure Failure { get; } = failure;
}

/// <summary>
/// The server did not present the pinned host key. Never retried: it may be a man-in-the-middle,
/// and every action on the target stops until an Admin re-pins.
/// </summary>
public sealed class HostKeyMismatchException(string message, string? stderr = null) : SshConnectionException(message, stderr, SshFailure.HostKeyChanged);

/// <summary>The target has no pinned host key, so the dashboard refuses to connect to it at all.</summary>
public sealed class HostKeyNotPinnedException(string message) : Exception(message);

/// <summary>The step was started before (its start marker exists on the target); it is never started twice.</summary>
public sealed class StepAlreadyStartedException(string message) : Exception(message);

/// <summary>A step was asked about that was never started on the target.</summary>
public sealed class StepNotStartedException(string message) : Exception(message);

/// <summary>A control script of ours failed on the target (not the step itself).</summary>
public sealed class RemoteCommandException(string message, int exitCode, string stderr) : Exception(message)
{
    public int ExitCode { get; } = exitCode;

    public string StandardError { get; } = stderr;
}
