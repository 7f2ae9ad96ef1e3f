using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;

namespace UpgradeConsole.Core.Remote;

/// <summary>A host public key as <c>ssh-keyscan</c> reports it.</summary>
public sealed record HostKey(string Type, string Base64)
{
    /// <summary>OpenSSH's SHA256 fingerprint, e.g. <c>SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU</c>.</summary>
    public string Fingerprint => "SHA256:" + Convert.ToBase64String(SHA256.HashData(Convert.FromBase64String(Base64))).TrimEnd('=');

    /// <summary>The known_hosts line that pins this key for <paramref name="host"/>:<paramref name="port"/>.</summary>
    public string KnownHostsLine(string host, int port) => $"{SshEndpoint.HostPattern(host, port)} {Type} {Base64}";

    /// <summary>Parses <c>ssh-keyscan</c> output (comment lines and unknown formats are skipped).</summary>
    public static IReadOnlyList<HostKey> ParseScan(string output)
    {
        var keys = new List<HostKey>();
        foreach (var raw in output.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 3 && IsKeyType(parts[1]) && IsBase64(parts[2]))
            {
                keys.Add(new HostKey(parts[1], parts[2]));
            }
        }

        return keys.DistinctBy(k => k.Base64).ToList();
    }

    private static bool IsKeyType(string type) =>
        type.StartsWith("ssh-", StringComparison.Ordinal) || type.StartsWith("ecdsa-", StringComparison.Ordinal) || type.StartsWith("sk-", StringComparison.Ordinal);

    private static bool IsBase64(string text)
    {
        var buffer = new byte[text.Length];
        return Convert.TryFromBase64String(text, buffer, out var written) && written > 0;
    }
}

/// <summary>Asks a host for its public keys with <c>ssh-keyscan</c>, directly or through a jump host.</summary>
public static class HostKeyScanner
{
    public static async Task<IReadOnlyList<HostKey>> ScanAsync(string host, int port, CancellationToken cancellationToken)
    {
        if (!HostNames.IsValid(host))
        {
            throw new ArgumentException($"'{host}' is not a host name or address.", nameof(host));
        }

        var start = new ProcessStartInfo("ssh-keyscan")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "-T", "10", "-p", port.ToString(CultureInfo.InvariantCulture), "--", host })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start ssh-keyscan.");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        var keys = HostKey.ParseScan(await output);
        if (keys.Count == 0)
        {
            throw new SshConnectionException($"{host}:{port} offered no SSH host key. Is an SSH server listening there?", await error);
        }

        return keys;
    }

    /// <summary>Scans <paramref name="host"/> from the jump host, for targets the dashboard cannot reach directly.</summary>
    public static async Task<IReadOnlyList<HostKey>> ScanThroughAsync(IRemoteShell jumpShell, string host, int port, CancellationToken cancellationToken)
    {
        if (!HostNames.IsValid(host))
        {
            throw new ArgumentException($"'{host}' is not a host name or address.", nameof(host));
        }

        var result = await jumpShell.RunAsync(
            $"ssh-keyscan -T 10 -p {ShellWords.Quote(port.ToString(CultureInfo.InvariantCulture))} -- {ShellWords.Quote(host)} 2>/dev/null",
            cancellationToken, TimeSpan.FromSeconds(30));
        var keys = HostKey.ParseScan(result.Output);
        return keys.Count > 0
            ? keys
            : throw new SshConnectionException($"{host}:{port}, scanned from the jump host, offered no SSH host key.", result.StandardError);
    }
}
