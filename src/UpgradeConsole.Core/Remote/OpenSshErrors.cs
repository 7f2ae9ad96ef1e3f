namespace UpgradeConsole.Core.Remote;

/// <summary>
/// Turns what the system ssh client prints when it cannot connect (exit status 255) into one plain sentence an admin
/// can act on, like <see cref="SshNetErrors"/> does for SSH.NET. The patterns are OpenSSH's own messages (ssh.c,
/// sshconnect.c, sshconnect2.c), as ssh prints them with LogLevel=ERROR; anything else keeps ssh's first line.
/// </summary>
public static class OpenSshErrors
{
    public static SshConnectionException Explain(string stderr, SshEndpoint endpoint)
    {
        var address = SshEndpoint.HostPattern(endpoint.Host, endpoint.Port);
        bool Says(string text) => stderr.Contains(text, StringComparison.OrdinalIgnoreCase);
        if (Says("Host key verification failed") || Says("REMOTE HOST IDENTIFICATION HAS CHANGED"))
        {
            return new HostKeyMismatchException(
                $"{endpoint.Destination} did not present the pinned host key. This can be a man-in-the-middle attack; " +
                "nothing will run on this target until an Admin checks the new key and pins it again.", stderr);
        }

        if (Says("Could not resolve hostname") || Says("Name or service not known") || Says("Temporary failure in name resolution"))
        {
            return new SshConnectionException(
                $"The host name {endpoint.Host} could not be resolved (DNS). Check the spelling, or the DNS of the dashboard's host.", stderr, SshFailure.Dns);
        }

        if (Says("Connection refused"))
        {
            return new SshConnectionException(
                $"{address} refused the connection: no SSH server listens on port {endpoint.Port} there, or a firewall rejects it.", stderr, SshFailure.Unreachable);
        }

        if (Says("No route to host") || Says("Network is unreachable") || Says("Host is down"))
        {
            return new SshConnectionException(
                $"{endpoint.Host} cannot be reached from the dashboard's host (no route). Check the address, the network and any VPN.", stderr, SshFailure.Unreachable);
        }

        if (Says("timed out") || Says("Connection timeout"))
        {
            return new SshConnectionException(
                $"{address} did not answer within {endpoint.ConnectTimeout.TotalSeconds:0} s: the host is down, or a firewall drops the connection.", stderr, SshFailure.Timeout);
        }

        if (Says("incorrect passphrase") || Says("bad passphrase"))
        {
            return new SshConnectionException("The private key could not be decrypted: the passphrase is wrong, or the agent does not hold the key.", stderr, SshFailure.BadKey);
        }

        if (Says("Load key") && (Says("invalid format") || Says("error in libcrypto")))
        {
            return new SshConnectionException("The private key is not one ssh can use (its file's format is wrong or damaged).", stderr, SshFailure.BadKey);
        }

        if (Says("Permission denied"))
        {
            return new SshConnectionException(
                $"{endpoint.Destination} refused the dashboard's key. Add its public key to ~{endpoint.User}/.ssh/authorized_keys on the target, or check the SSH user.",
                stderr, SshFailure.KeyRefused);
        }

        if (Says("Connection closed by") || Says("Connection reset") || Says("kex_exchange_identification") || Says("Broken pipe"))
        {
            return new SshConnectionException(
                $"{address} closed the connection before signing in: is an SSH server listening there, and does it allow the dashboard's address?", stderr, SshFailure.Lost);
        }

        var line = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        return new SshConnectionException($"SSH to {endpoint.Destination} failed: {(string.IsNullOrEmpty(line) ? "the connection was closed" : line)}", stderr);
    }
}
