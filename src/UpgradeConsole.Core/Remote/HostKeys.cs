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

/// <summary>
/// Asks a host for its public keys over SSH.NET: one connection per key type, each captured in
/// <c>HostKeyReceived</c> and then refused, so the scan never authenticates or sends a credential.
/// </summary>
public static class HostKeyScanner
{
    /// <summary>Key types asked for, one connection each (RSA with SHA-2 signatures).</summary>
    private static readonly string[][] Families =
    [
        ["ssh-ed25519"],
        ["ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"],
        ["rsa-sha2-512", "rsa-sha2-256"],
    ];

    public static async Task<IReadOnlyList<HostKey>> ScanAsync(string host, int port, CancellationToken cancellationToken) =>
        await ScanAsync(host, port, host, port, cancellationToken);

    /// <summary>
    /// Scans <paramref name="host"/>:<paramref name="port"/> through an SSH.NET connection to its jump host
    /// (a port forwarded on the jump host's own pinned connection).
    /// </summary>
    public static async Task<IReadOnlyList<HostKey>> ScanThroughAsync(SshNetShell jump, string host, int port, CancellationToken cancellationToken)
    {
        await using var forward = await jump.ForwardAsync(host, port, cancellationToken);
        return await ScanAsync(forward.Host, forward.Port, host, port, cancellationToken);
    }

    private static async Task<IReadOnlyList<HostKey>> ScanAsync(string connectHost, int connectPort, string host, int port, CancellationToken cancellationToken)
    {
        if (!HostNames.IsValid(host))
        {
            throw new ArgumentException($"'{host}' is not a host name or address.", nameof(host));
        }

        var keys = new List<HostKey>();
        SshConnectionException? failure = null;
        foreach (var family in Families)
        {
            var info = new Renci.SshNet.ConnectionInfo(connectHost.Trim('[', ']'), connectPort, "upgradeconsole-scan", new Renci.SshNet.NoneAuthenticationMethod("upgradeconsole-scan"))
            {
                Timeout = TimeSpan.FromSeconds(10),
            };
            SshNetConnection.OnlyHostKeyAlgorithms(info, family);
            using var client = new Renci.SshNet.SshClient(info);
            HostKey? seen = null;
            client.HostKeyReceived += (_, e) =>
            {
                seen = FromBlob(e.HostKey);
                e.CanTrust = false;
            };
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            try
            {
                await client.ConnectAsync(timeout.Token);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                if (seen is null)
                {
                    failure ??= SshNetErrors.Explain(ex, new SshNetEndpoint { Host = host, Port = port, User = "upgradeconsole-scan", Keys = [], PinnedKey = new HostKey("none", ""), ConnectTimeout = TimeSpan.FromSeconds(10) }, null);
                }
            }

            if (seen is not null)
            {
                keys.Add(seen);
            }
            else if (failure is { Failure: SshFailure.Dns or SshFailure.Unreachable or SshFailure.Timeout })
            {
                // The host itself cannot be reached: asking for the next key type would only wait again.
                break;
            }
        }

        return keys.Count > 0
            ? keys.DistinctBy(k => k.Base64).ToList()
            : throw failure ?? new SshConnectionException($"{SshEndpoint.HostPattern(host, port)} offered no SSH host key. Is an SSH server listening there?");
    }

    /// <summary>The key as known_hosts writes it: its type is the blob's first string.</summary>
    internal static HostKey FromBlob(byte[] blob)
    {
        var length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(blob);
        var type = System.Text.Encoding.ASCII.GetString(blob, 4, length);
        return new HostKey(type, Convert.ToBase64String(blob));
    }

    /// <summary>Scans <paramref name="host"/> with ssh-keyscan on the jump host (the OpenSSH transport, whose jump connection SSH.NET may not be able to make).</summary>
    public static async Task<IReadOnlyList<HostKey>> ScanFromAsync(IRemoteShell jumpShell, string host, int port, CancellationToken cancellationToken)
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
