using System.Globalization;
using System.Text.RegularExpressions;

namespace UpgradeConsole.Core.BackendAi;

/// <summary>The components a Backend.AI host can run; each is the pip package <c>backend.ai-&lt;role&gt;</c>.</summary>
public static class ClusterRoles
{
    public const string Manager = "manager";
    public const string Agent = "agent";
    public const string StorageProxy = "storage-proxy";
    public const string Webserver = "webserver";
    public const string AppProxyCoordinator = "app-proxy-coordinator";
    public const string AppProxyWorker = "app-proxy-worker";

    /// <summary>Every role, in the order the target page lists hosts (manager first).</summary>
    public static IReadOnlyList<string> All { get; } = [Manager, StorageProxy, Webserver, AppProxyCoordinator, AppProxyWorker, Agent];

    /// <summary>The package a role's component is installed as.</summary>
    public static string Package(string role) => "backend.ai-" + role;

    /// <summary>The configuration file a component reads by default, in the configuration directory (<c>/etc/backend.ai</c>).</summary>
    public static string ConfigFile(string role) => role switch
    {
        Webserver => "webserver.conf",
        _ => role + ".toml",
    };

    /// <summary>
    /// Reads <c>agent</c> or <c>manager,storage-proxy</c> (one host may run several components); the error names
    /// the unknown role and lists the known ones.
    /// </summary>
    public static bool TryParse(string? text, out IReadOnlyList<string> roles, out string? error)
    {
        roles = [];
        var parts = (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(p => p.ToLowerInvariant()).Distinct(StringComparer.Ordinal).ToList();
        if (parts.Count == 0)
        {
            error = $"no role (one of {string.Join(", ", All)})";
            return false;
        }

        if (parts.FirstOrDefault(p => !All.Contains(p)) is { } unknown)
        {
            error = $"'{unknown}' is not a Backend.AI role (one of {string.Join(", ", All)}; several joined by commas)";
            return false;
        }

        roles = [.. All.Where(parts.Contains)];
        error = null;
        return true;
    }
}

/// <summary>One host of a pasted list: its roles, the SSH login, and optionally the host key fingerprint to pin.</summary>
public sealed record ClusterHostLine(int LineNumber, IReadOnlyList<string> Roles, string User, string Host, int Port, string? Fingerprint)
{
    public string Address => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port.ToString(CultureInfo.InvariantCulture)}" : $"{Host}:{Port.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>
/// The host list an Admin pastes for a Backend.AI cluster: one host a line, <c>role user@host:port</c>
/// (<c>agent ops@gpu-01.example.org:22</c>; several roles joined by commas; the port defaults to 22; an IPv6
/// address in brackets), optionally followed by the host key's <c>SHA256:…</c> fingerprint to pin. Blank lines
/// and lines starting with <c>#</c> are skipped. Any bad line refuses the whole list: nothing is saved from it.
/// </summary>
public static partial class ClusterHostList
{
    /// <summary>A sane upper bound for one paste (a 200-node cluster with room to spare).</summary>
    public const int MaxHosts = 2000;

    /// <summary>The hosts of <paramref name="text"/>, or the one-line error of its first bad line (<c>Line 3 ("…"): why</c>).</summary>
    public static bool TryParse(string? text, out IReadOnlyList<ClusterHostLine> hosts, out string? error)
    {
        hosts = [];
        var parsed = new List<ClusterHostLine>();
        var seen = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        var lines = (text ?? "").Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            if (!TryParseLine(i + 1, line, out var host, out var why))
            {
                error = $"Line {(i + 1).ToString(CultureInfo.InvariantCulture)} (\"{Shorten(line)}\"): {why}.";
                return false;
            }

            if (seen.TryGetValue(host!.Address, out var first))
            {
                error = $"Line {(i + 1).ToString(CultureInfo.InvariantCulture)} (\"{Shorten(line)}\"): {host.Address} is already on line {first.ToString(CultureInfo.InvariantCulture)}; give each host once, with all its roles joined by commas.";
                return false;
            }

            seen[host.Address] = i + 1;
            parsed.Add(host);
            if (parsed.Count > MaxHosts)
            {
                error = $"More than {MaxHosts.ToString(CultureInfo.InvariantCulture)} hosts in one paste; paste them in parts.";
                return false;
            }
        }

        if (parsed.Count == 0)
        {
            error = "No host given: paste one host a line, 'role user@host:port' (e.g. 'agent ops@gpu-01.example.org:22').";
            return false;
        }

        hosts = parsed;
        error = null;
        return true;
    }

    /// <summary>One line, <c>role user@host[:port] [SHA256:…]</c>.</summary>
    public static bool TryParseLine(int number, string line, out ClusterHostLine? host, out string? error)
    {
        host = null;
        var words = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (words.Length is < 2 or > 3)
        {
            error = "expected 'role user@host:port' (and optionally the host key's SHA256:… fingerprint)";
            return false;
        }

        if (!ClusterRoles.TryParse(words[0], out var roles, out error))
        {
            return false;
        }

        if (!TryParseLogin(words[1], out var user, out var name, out var port, out error))
        {
            return false;
        }

        string? fingerprint = null;
        if (words.Length == 3)
        {
            if (!Fingerprint().IsMatch(words[2]))
            {
                error = $"'{Shorten(words[2])}' is not a host key fingerprint (SHA256:… as ssh-keygen -lf prints it)";
                return false;
            }

            fingerprint = words[2];
        }

        host = new ClusterHostLine(number, roles, user!, name!, port, fingerprint);
        return true;
    }

    /// <summary>Reads <c>user@host</c>, <c>user@host:port</c> or <c>user@[v6]:port</c>.</summary>
    public static bool TryParseLogin(string text, out string? user, out string? host, out int port, out string? error)
    {
        (user, host, port) = (null, null, 22);
        var at = text.IndexOf('@', StringComparison.Ordinal);
        if (at <= 0)
        {
            error = $"'{Shorten(text)}' has no user: write user@host:port";
            return false;
        }

        user = text[..at];
        if (!User().IsMatch(user))
        {
            error = $"'{Shorten(user)}' is not a user name (letters, digits, '_', '.', '-'; starting with a letter or '_')";
            return false;
        }

        var rest = text[(at + 1)..];
        string? portText = null;
        if (rest.StartsWith('['))
        {
            var close = rest.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                error = $"'{Shorten(rest)}' opens '[' without closing it";
                return false;
            }

            host = rest[1..close];
            var after = rest[(close + 1)..];
            if (after.Length > 0)
            {
                if (!after.StartsWith(':'))
                {
                    error = $"unexpected '{Shorten(after)}' after the address";
                    return false;
                }

                portText = after[1..];
            }

            if (!System.Net.IPAddress.TryParse(host, out var v6) || v6.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
            {
                error = $"'{Shorten(host)}' is not an IPv6 address";
                return false;
            }
        }
        else
        {
            var colon = rest.LastIndexOf(':');
            if (colon >= 0 && rest.IndexOf(':', StringComparison.Ordinal) != colon)
            {
                error = "an IPv6 address goes in brackets: user@[2001:db8::1]:22";
                return false;
            }

            host = colon >= 0 ? rest[..colon] : rest;
            portText = colon >= 0 ? rest[(colon + 1)..] : null;
            if (!HostName().IsMatch(host) || host.Length > 253)
            {
                error = host.Length == 0 ? "no host after '@'" : $"'{Shorten(host)}' is not a host name or address";
                return false;
            }
        }

        if (portText is not null && (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535))
        {
            error = $"'{Shorten(portText)}' is not a port (1–65535)";
            return false;
        }

        error = null;
        return true;
    }

    private static string Shorten(string text) => text.Length <= 60 ? text : text[..57] + "…";

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")]
    private static partial Regex User();

    // Letters, digits, dots and hyphens: a DNS name or an IPv4 address; nothing a shell or ssh would read as an option.
    [GeneratedRegex("^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")]
    private static partial Regex HostName();

    [GeneratedRegex("^SHA256:[A-Za-z0-9+/]{43}=?$")]
    private static partial Regex Fingerprint();
}
