using System.Net.Sockets;
using Renci.SshNet.Common;

namespace UpgradeConsole.Core.Remote;

/// <summary>Turns what SSH.NET throws into one plain sentence an admin can act on.</summary>
public static class SshNetErrors
{
    /// <summary>Explains a failed connection to <paramref name="endpoint"/>; <paramref name="presented"/> is the host key fingerprint it saw, if any.</summary>
    /// <remarks><paramref name="distrust"/>: why the host key was not trusted (see <c>SshNetConnection.Distrust</c>), when it was not.</remarks>
    public static SshConnectionException Explain(Exception ex, SshNetEndpoint endpoint, string? presented, string? distrust = null)
    {
        var address = SshEndpoint.HostPattern(endpoint.Host, endpoint.Port);
        if (distrust is not null)
        {
            return new HostKeyMismatchException(distrust, $"presented {presented}, pinned {endpoint.PinnedKey?.Fingerprint ?? "(none)"}, host CA {endpoint.HostCertificateAuthority ?? "(none)"}");
        }

        // SSH.NET checks a host certificate's validity period and CA signature itself, before HostKeyReceived.
        if (endpoint.HostCertificateAuthority is not null && presented is null
            && ex is Renci.SshNet.Common.SshConnectionException && ex.Message.Contains("Host key could not be verified", StringComparison.OrdinalIgnoreCase))
        {
            return new HostKeyMismatchException(
                $"{address} presented a host certificate that does not verify: it is expired or not yet valid, or not signed by the CA key it names. " +
                "Nothing will run on this target until an Admin checks the host and its certificate.", ex.Message);
        }

        var socket = ex as SocketException ?? ex.InnerException as SocketException;
        return socket?.SocketErrorCode switch
        {
            SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData => new SshConnectionException(
                $"The host name {endpoint.Host} could not be resolved (DNS). Check the spelling, or the DNS of the dashboard's host.", socket.Message, SshFailure.Dns),
            SocketError.ConnectionRefused => new SshConnectionException(
                $"{address} refused the connection: no SSH server listens on port {endpoint.Port} there, or a firewall rejects it.", socket.Message, SshFailure.Unreachable),
            SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.HostDown or SocketError.NetworkDown => new SshConnectionException(
                $"{endpoint.Host} cannot be reached from the dashboard's host (no route). Check the address, the network and any VPN.", socket.Message, SshFailure.Unreachable),
            SocketError.TimedOut => Timeout(endpoint, address, socket.Message),
            _ => ex switch
            {
                SshOperationTimeoutException or OperationCanceledException or TimeoutException => Timeout(endpoint, address, ex.Message),
                SshAuthenticationException => new SshConnectionException(
                    $"{endpoint.Destination} refused the dashboard's key. Add its public key to ~{endpoint.User}/.ssh/authorized_keys on the target, or check the SSH user.",
                    ex.Message, SshFailure.KeyRefused),
                Renci.SshNet.Common.SshConnectionException when presented is null => new SshConnectionException(
                    $"{address} closed the connection before showing a host key: is it an SSH server? ({ex.Message})", ex.Message, SshFailure.Unreachable),
                _ => new SshConnectionException($"SSH to {address} failed: {ex.Message}", ex.Message),
            },
        };
    }

    /// <summary>Explains why a private key could not be loaded (before any connection is tried).</summary>
    public static SshConnectionException BadKey(Exception ex, string what) => ex switch
    {
        SshPassPhraseNullOrEmptyException => new SshConnectionException(
            $"The {what} is protected by a passphrase and none is set: enter the key's passphrase in the target's settings.", ex.Message, SshFailure.BadKey),
        // OpenSSH-format keys report a wrong passphrase as mismatching check bytes; PEM ones as bad padding.
        _ when ex.Message.Contains("passphrase", StringComparison.OrdinalIgnoreCase) || ex.Message.Contains("check bytes", StringComparison.OrdinalIgnoreCase)
            || ex is System.Security.Cryptography.CryptographicException => new SshConnectionException(
            $"The {what} could not be decrypted: the passphrase is wrong.", ex.Message, SshFailure.BadKey),
        _ => new SshConnectionException(
            $"The {what} is not a private key SSH.NET can use (OpenSSH, PEM or PuTTY format; ed25519, ECDSA or RSA).", ex.Message, SshFailure.BadKey),
    };

    private static SshConnectionException Timeout(SshNetEndpoint endpoint, string address, string detail) => new(
        $"{address} did not answer within {endpoint.ConnectTimeout.TotalSeconds:0} s: the host is down, or a firewall drops the connection.", detail, SshFailure.Timeout);
}
