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
            // -J with a fixed alias: the jump connection's fail-closed options live in ConfigFile (see
            // JumpConfig), which ssh hands on to the jump ssh with -F. ProxyCommand is never built from a
            // host string: ssh runs it through /bin/sh.
            options.AddRange(["-F", ConfigFile ?? throw new InvalidOperationException("A jump host needs the endpoint's ConfigFile."), "-J", JumpAlias]);
        }

        return options;
    }

    /// <summary>The name the jump host goes by in <see cref="ConfigFile"/>; never a host name.</summary>
    public const string JumpAlias = "upgradeconsole-jump";

    /// <summary>
    /// The ssh_config file given with <c>-F</c> when there is a jump host (written from <see cref="JumpConfig"/>);
    /// it includes the user's and the system's own configuration after the jump host's block.
    /// </summary>
    public string? ConfigFile { get; init; }

    /// <summary>
    /// The text of <see cref="ConfigFile"/>: the jump host's address, user and identity under a fixed alias,
    /// with the same fail-closed host-key options as the target's connection.
    /// </summary>
    public string JumpConfig()
    {
        var jump = Jump ?? throw new InvalidOperationException("No jump host.");
        if (!HostNames.IsValid(jump.Host) || !HostNames.IsValidUser(jump.User))
        {
            throw new ArgumentException($"'{jump.User}@{jump.Host}' is not a valid jump host.");
        }

        var lines = new List<string>
        {
            $"Host {JumpAlias}",
            // '%' starts a token in HostName: an IPv6 scope id (letters and digits only) is written as %%.
            $"  HostName {jump.Host.Trim('[', ']').Replace("%", "%%", StringComparison.Ordinal)}",
            $"  Port {jump.Port.ToString(CultureInfo.InvariantCulture)}",
            $"  User {jump.User}",
            "  BatchMode yes",
            "  StrictHostKeyChecking yes",
            "  UpdateHostKeys no",
            "  CheckHostIP no",
            $"  UserKnownHostsFile {ConfigWord(KnownHostsFile)}",
            "  GlobalKnownHostsFile /dev/null",
            $"  ConnectTimeout {(int)ConnectTimeout.TotalSeconds}",
            "  LogLevel ERROR",
            "  ControlMaster no",
            "  ControlPath none",
        };
        if (jump.HostKeyAlgorithm is not null)
        {
            lines.Add($"  HostKeyAlgorithms {ConfigWord(jump.HostKeyAlgorithm)}");
        }

        switch (Identity)
        {
            case SshIdentity.KeyFile file:
                lines.AddRange([$"  IdentityFile {ConfigWord(file.Path)}", "  IdentitiesOnly yes", "  IdentityAgent none"]);
                break;
            default:
                break;
        }

        // -F replaces the default files: keep the user's and the system's configuration after ours
        // (first value wins in ssh_config, so the block above and the command line still decide).
        lines.AddRange(["Match all", "  Include ~/.ssh/config", "  Include /etc/ssh/ssh_config"]);
        return string.Join('\n', lines) + "\n";
    }

    /// <summary>A value for ssh_config, double-quoted; values that cannot be written safely there are refused.</summary>
    private static string ConfigWord(string value) =>
        value.Any(c => c is '"' or '\\' or '%' || char.IsControl(c))
            ? throw new ArgumentException($"'{value}' cannot be written into an ssh_config file.", nameof(value))
            : $"\"{value}\"";

    /// <summary>How ssh finds the key: the given file only, or the user's defaults (ssh_config, SSH_AUTH_SOCK, FIDO, Kerberos).</summary>
    private IEnumerable<string> IdentityOptions() => Identity switch
    {
        SshIdentity.KeyFile file => ["-i", file.Path, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"],
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
    /// <summary>
    /// A DNS name or an IPv4/IPv6 literal (an IPv6 scope id after '%' has letters and digits only); never
    /// starts with '-' (which ssh would read as an option).
    /// </summary>
    public static bool IsValid(string? host) =>
        !string.IsNullOrEmpty(host) && host.Length <= 253 && host[0] != '-' && (IsAddress(host.Trim('[', ']')) || IsDnsName(host));

    private static bool IsAddress(string text)
    {
        var percent = text.IndexOf('%', StringComparison.Ordinal);
        if (percent < 0)
        {
            return System.Net.IPAddress.TryParse(text, out _);
        }

        // IPAddress.TryParse takes anything after '%' as a scope: only a plain interface name or number may pass.
        var scope = text[(percent + 1)..];
        return scope.Length is > 0 and <= 32 && scope.All(char.IsAsciiLetterOrDigit)
            && System.Net.IPAddress.TryParse(text[..percent], out var address)
            && address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
    }

    private static bool IsDnsName(string host) =>
        host.Split('.').All(label => label.Length is > 0 and <= 63 && label[0] != '-' && label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-' || c == '_'));

    /// <summary>A POSIX-ish login name: letters, digits, '.', '_', '-', not starting with '-'.</summary>
    public static bool IsValidUser(string? user) =>
        !string.IsNullOrEmpty(user) && user.Length <= 64 && user[0] != '-' &&
        user.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');
}
