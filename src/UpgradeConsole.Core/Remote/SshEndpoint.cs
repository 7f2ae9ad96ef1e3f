using System.Globalization;

namespace UpgradeConsole.Core.Remote;

/// <summary>How the ssh client authenticates to a target.</summary>
public abstract record SshIdentity
{
    private SshIdentity()
    {
    }

    /// <summary>A private key file on the dashboard host.</summary>
    public sealed record KeyFile(string Path) : SshIdentity;

    /// <summary>An ssh-agent socket (the dashboard user's own, or one holding a stored key).</summary>
    public sealed record Agent(string SocketPath) : SshIdentity;

    /// <summary>Whatever the dashboard user's ssh configuration and SSH_AUTH_SOCK provide.</summary>
    public sealed record DashboardUser : SshIdentity;
}

/// <summary>
/// Everything the OpenSSH client needs to reach one target safely: address, identity, the
/// pinned known_hosts file, and the ControlMaster socket every step of that target shares.
/// </summary>
public sealed record SshEndpoint
{
    public required string Host { get; init; }

    public int Port { get; init; } = 22;

    public required string User { get; init; }

    public required SshIdentity Identity { get; init; }

    /// <summary>A known_hosts file holding only the pinned key(s) of this target (and its jump host).</summary>
    public required string KnownHostsFile { get; init; }

    /// <summary>The pinned key's type (e.g. ssh-ed25519): the server must present exactly that type.</summary>
    public string? HostKeyAlgorithm { get; init; }

    /// <summary>The multiplexing socket shared by every connection to this target.</summary>
    public required string ControlPath { get; init; }

    public TimeSpan ControlPersist { get; init; } = TimeSpan.FromMinutes(10);

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Optional jump host; its key must be pinned in the same known_hosts file.</summary>
    public JumpHost? Jump { get; init; }

    /// <summary>The ssh arguments before the destination: options that fail closed on any host-key doubt.</summary>
    public IReadOnlyList<string> Options()
    {
        var options = new List<string>
        {
            "-p", Port.ToString(CultureInfo.InvariantCulture),
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "UpdateHostKeys=no",
            "-o", "CheckHostIP=no",
            "-o", "UserKnownHostsFile=" + KnownHostsFile,
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ControlMaster=auto",
            "-o", "ControlPath=" + ControlPath,
            "-o", "ControlPersist=" + (int)ControlPersist.TotalSeconds,
            "-o", "ConnectTimeout=" + (int)ConnectTimeout.TotalSeconds,
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3",
            "-o", "LogLevel=ERROR",
            "-o", "RequestTTY=no",
            "-o", "StreamLocalBindUnlink=yes",
        };
        if (HostKeyAlgorithm is not null)
        {
            options.AddRange(["-o", "HostKeyAlgorithms=" + HostKeyAlgorithm]);
        }

        options.AddRange(IdentityOptions());

        if (Jump is not null)
        {
            // Not -J: options given on the command line do not reach the jump connection, which would
            // then check its host key against ~/.ssh/known_hosts. An explicit ProxyCommand carries
            // the same fail-closed options (quoted: ssh runs it through /bin/sh).
            var inner = new List<string> { "ssh", "-p", Jump.Port.ToString(CultureInfo.InvariantCulture) };
            inner.AddRange(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
                "-o", "UserKnownHostsFile=" + KnownHostsFile, "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=" + (int)ConnectTimeout.TotalSeconds, "-o", "LogLevel=ERROR"]);
            if (Jump.HostKeyAlgorithm is not null)
            {
                inner.AddRange(["-o", "HostKeyAlgorithms=" + Jump.HostKeyAlgorithm]);
            }

            inner.AddRange(IdentityOptions());

            inner.AddRange(["-W", "[%h]:%p", $"{Jump.User}@{Jump.Host}"]);
            // %h and %p are ssh's own tokens; every other word is quoted.
            options.AddRange(["-o", "ProxyCommand=" + string.Join(' ', inner.Select(w => w == "[%h]:%p" ? w : ShellWords.Quote(w)))]);
        }

        return options;
    }

    /// <summary>How ssh finds the key: the given file only, or the given agent only, or the user's defaults.</summary>
    private IEnumerable<string> IdentityOptions() => Identity switch
    {
        SshIdentity.KeyFile file => ["-i", file.Path, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"],
        SshIdentity.Agent agent => ["-o", "IdentityAgent=" + agent.SocketPath],
        _ => [],
    };

    /// <summary><c>user@host</c>, the destination argument.</summary>
    public string Destination => $"{User}@{Host}";

    /// <summary>The known_hosts host pattern for this endpoint (<c>[host]:port</c> unless port 22).</summary>
    public static string HostPattern(string host, int port) =>
        port == 22 ? host : $"[{host}]:{port.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>A jump (bastion) host, written <c>user@host:port</c> (port optional).</summary>
public sealed record JumpHost(string User, string Host, int Port, string? HostKeyAlgorithm = null)
{
    public static bool TryParse(string? text, out JumpHost? jump)
    {
        jump = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var at = text.IndexOf('@', StringComparison.Ordinal);
        if (at <= 0)
        {
            return false;
        }

        var user = text[..at];
        var rest = text[(at + 1)..];
        var port = 22;
        var colon = rest.LastIndexOf(':');
        if (colon > 0 && !rest.EndsWith(']'))
        {
            if (!int.TryParse(rest[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
            {
                return false;
            }

            rest = rest[..colon];
        }

        if (!HostNames.IsValid(rest) || !HostNames.IsValidUser(user))
        {
            return false;
        }

        jump = new JumpHost(user, rest, port);
        return true;
    }

    public override string ToString() => $"{User}@{Host}:{Port.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>Validation of host and user names before they reach ssh's command line.</summary>
public static class HostNames
{
    /// <summary>A DNS name or an IPv4/IPv6 literal; never starts with '-' (which ssh would read as an option).</summary>
    public static bool IsValid(string? host) =>
        !string.IsNullOrEmpty(host) && host.Length <= 253 && host[0] != '-' &&
        (System.Net.IPAddress.TryParse(host.Trim('[', ']'), out _) ||
         host.Split('.').All(label => label.Length is > 0 and <= 63 && label[0] != '-' && label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-' || c == '_')));

    /// <summary>A POSIX-ish login name: letters, digits, '.', '_', '-', not starting with '-'.</summary>
    public static bool IsValidUser(string? user) =>
        !string.IsNullOrEmpty(user) && user.Length <= 64 && user[0] != '-' &&
        user.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');
}
