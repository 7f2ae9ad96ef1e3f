using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Renci.SshNet;
using Renci.SshNet.Common;

namespace UpgradeConsole.Core.Remote;

/// <summary>Everything SSH.NET needs to reach one target: address, keys already in memory, the pinned host key.</summary>
public sealed record SshNetEndpoint
{
    public required string Host { get; init; }

    public int Port { get; init; } = 22;

    public required string User { get; init; }

    /// <summary>The private keys to offer, loaded from memory or a key file; never written anywhere by us.</summary>
    public required IReadOnlyList<IPrivateKeySource> Keys { get; init; }

    /// <summary>The pinned host key: any other key ends the connection before authentication (null: only a host certificate of <see cref="HostCertificateAuthority"/>).</summary>
    public required HostKey? PinnedKey { get; init; }

    /// <summary>
    /// The SHA256 fingerprint of a host CA key (OpenSSH's @cert-authority): a host certificate signed by it, valid now and
    /// naming <see cref="Host"/> (or no host), is trusted too. SSH.NET checks the certificate's signature with the CA key
    /// during the key exchange; its validity, kind and principals are checked here.
    /// </summary>
    public string? HostCertificateAuthority { get; init; }

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Keep-alive messages find a dead link (and keep NAT state) like OpenSSH's ServerAliveInterval.</summary>
    public TimeSpan KeepAlive { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>A jump host reached first, on its own pinned connection; the target is reached through a port forwarded there.</summary>
    public SshNetEndpoint? Jump { get; init; }

    public string Destination => $"{User}@{SshEndpoint.HostPattern(Host, Port)}";
}

/// <summary>
/// One connected <see cref="SshClient"/> for a target, shared by every command to it, reconnected
/// when the link dropped. Every connection is made here, and here only: the host key is compared
/// with the pinned SHA256 fingerprint in <c>HostKeyReceived</c>, before authentication, failing closed.
/// </summary>
public sealed class SshNetConnection(SshNetEndpoint endpoint, ILogger? logger = null) : IAsyncDisposable
{
    /// <summary>Ciphers in order of preference: AES-GCM and AES-CTR use the runtime's hardware AES.</summary>
    private static readonly string[] PreferredCiphers =
        ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr", "aes192-ctr", "chacha20-poly1305@openssh.com"];

    private readonly ILogger _logger = logger ?? NullLogger.Instance;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private SshClient? _client;
    private SshNetConnection? _jump;
    private ForwardedPortLocal? _jumpForward;
    private bool _disposed;

    public SshNetEndpoint Endpoint { get; } = endpoint;

    /// <summary>The connected client, connecting (or reconnecting) first when needed.</summary>
    public async Task<SshClient> ClientAsync(CancellationToken cancellationToken)
    {
        if (_client is { IsConnected: true } ready)
        {
            return ready;
        }

        await _gate.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_client is { IsConnected: true } connected)
            {
                return connected;
            }

            CloseClient();
            var (host, port) = (Endpoint.Host, Endpoint.Port);
            if (Endpoint.Jump is { } jump)
            {
                _jump ??= new SshNetConnection(jump, _logger);
                var jumpClient = await _jump.ClientAsync(cancellationToken);
                _jumpForward = new ForwardedPortLocal("127.0.0.1", 0, Endpoint.Host, (uint)Endpoint.Port);
                jumpClient.AddForwardedPort(_jumpForward);
                _jumpForward.Start();
                (host, port) = ("127.0.0.1", (int)_jumpForward.BoundPort);
            }

            _client = await ConnectAsync(Endpoint, host, port, cancellationToken);
            _logger.LogInformation("SSH.NET connected to {Destination} ({Cipher})", Endpoint.Destination, _client.ConnectionInfo.CurrentServerEncryption);
            return _client;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Drops the current connection (the next command reconnects).</summary>
    public async Task ResetAsync()
    {
        await _gate.WaitAsync();
        try
        {
            CloseClient();
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync();
        try
        {
            _disposed = true;
            CloseClient();
            if (_jump is not null)
            {
                await _jump.DisposeAsync();
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Connects and authenticates one client to <paramref name="host"/>:<paramref name="port"/> (the
    /// endpoint's own address, or a port forwarded on its jump host), checking the pinned key.
    /// </summary>
    internal static async Task<SshClient> ConnectAsync(SshNetEndpoint endpoint, string host, int port, CancellationToken cancellationToken)
    {
        var info = new ConnectionInfo(host, port, endpoint.User, new PrivateKeyAuthenticationMethod(endpoint.User, [.. endpoint.Keys]))
        {
            Timeout = endpoint.ConnectTimeout,
        };
        Ed25519Certificates.ReadHostCertificatesWhole(info);
        RestrictHostKeyAlgorithms(info, endpoint);
        PreferFastCiphers(info);
        var client = new SshClient(info) { KeepAliveInterval = endpoint.KeepAlive };
        string? presented = null;
        string? distrust = null;
        client.HostKeyReceived += (_, e) =>
        {
            presented = "SHA256:" + e.FingerPrintSHA256;
            distrust = Distrust(endpoint, e.Certificate, presented, TimeProvider.System.GetUtcNow());
            e.CanTrust = distrust is null;
        };

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(endpoint.ConnectTimeout);
        // SSH.NET's ConnectAsync blocks its caller on the key exchange, service request and authentication: the
        // blocking Connect runs on a thread of its own instead (see OwnThread); the wait for it honours cancellation,
        // and disposing the client ends an abandoned handshake (its own waits end at ConnectionInfo.Timeout anyway).
        var connecting = OwnThread.RunAsync("ssh-connect", () =>
        {
            client.Connect();
            return client;
        });
        try
        {
            return await connecting.WaitAsync(timeout.Token);
        }
        catch (Exception ex)
        {
            client.Dispose();
            _ = connecting.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw SshNetErrors.Explain(ex, endpoint, presented, distrust);
        }
    }

    /// <summary>
    /// Why the host's key is not trusted, or null when it is: the pinned key itself, or (with a host CA pinned) a host
    /// certificate the CA signed, valid now, for this host. A certificate is never trusted without a pinned CA.
    /// </summary>
    internal static string? Distrust(SshNetEndpoint endpoint, Renci.SshNet.Security.Certificate? certificate, string presented, DateTimeOffset now)
    {
        var address = SshEndpoint.HostPattern(endpoint.Host, endpoint.Port);
        if (certificate is not null)
        {
            return endpoint.HostCertificateAuthority is { } ca
                ? SshCertificates.CheckHostCertificate(certificate, ca, endpoint.Host, now) is { } problem
                    ? $"{address} presented a host certificate that cannot be trusted: {problem} Nothing will run on this target until an Admin checks the host and its certificate."
                    : null
                : $"{address} presented a host certificate, but this target trusts no host CA: pin the CA's key fingerprint, or the host's own key.";
        }

        if (endpoint.PinnedKey is { } pinned)
        {
            return string.Equals(presented, pinned.Fingerprint, StringComparison.Ordinal)
                ? null
                : $"{address} presented the host key {presented}, not the pinned {pinned.Fingerprint}. This can be a man-in-the-middle attack; " +
                  "nothing will run on this target until an Admin checks the new key and pins it again.";
        }

        return $"{address} presented the plain host key {presented}, not a certificate of the pinned host CA {endpoint.HostCertificateAuthority}. " +
            "Nothing will run on this target until an Admin checks the host.";
    }

    /// <summary>
    /// Without a host CA: only the pinned key's algorithms, as OpenSSH's HostKeyAlgorithms does. With one: the
    /// certificate algorithms first (so a host that has a certificate presents it), then the pinned key's, then the
    /// other plain ones, which SSH.NET needs to check the CA's signature in a certificate (a plain key is still trusted
    /// only if it is the pinned one). SHA-1 RSA and DSA never.
    /// </summary>
    internal static void RestrictHostKeyAlgorithms(ConnectionInfo info, SshNetEndpoint endpoint)
    {
        var pinned = endpoint.PinnedKey is { } key ? AlgorithmsFor(key.Type) : [];
        if (endpoint.HostCertificateAuthority is null)
        {
            OnlyHostKeyAlgorithms(info, pinned);
            return;
        }

        var all = info.HostKeyAlgorithms.Where(a => a.Key is not ("ssh-rsa" or "ssh-dss" or "ssh-rsa-cert-v01@openssh.com" or "ssh-dss-cert-v01@openssh.com")).ToList();
        var ordered = all.Where(a => a.Key.EndsWith("-cert-v01@openssh.com", StringComparison.Ordinal))
            .Concat(all.Where(a => pinned.Contains(a.Key)))
            .Concat(all.Where(a => !a.Key.EndsWith("-cert-v01@openssh.com", StringComparison.Ordinal) && !pinned.Contains(a.Key)))
            .ToList();
        info.HostKeyAlgorithms.Clear();
        foreach (var (name, factory) in ordered)
        {
            info.HostKeyAlgorithms.Add(name, factory);
        }
    }

    /// <summary>The host key algorithms that present a key of <paramref name="keyType"/> (RSA: SHA-2 signatures only).</summary>
    internal static string[] AlgorithmsFor(string keyType) => keyType switch
    {
        "ssh-rsa" => ["rsa-sha2-512", "rsa-sha2-256"],
        _ => [keyType],
    };

    /// <summary>Leaves only <paramref name="algorithms"/>: the server must present the pinned key's type, as OpenSSH's HostKeyAlgorithms does.</summary>
    internal static void OnlyHostKeyAlgorithms(ConnectionInfo info, IReadOnlyCollection<string> algorithms)
    {
        foreach (var name in info.HostKeyAlgorithms.Keys.Where(k => !algorithms.Contains(k)).ToList())
        {
            info.HostKeyAlgorithms.Remove(name);
        }
    }

    private static void PreferFastCiphers(ConnectionInfo info)
    {
        var available = info.Encryptions.ToList();
        info.Encryptions.Clear();
        foreach (var name in PreferredCiphers)
        {
            if (available.FirstOrDefault(c => c.Key == name) is { Value: not null } cipher)
            {
                info.Encryptions.Add(cipher.Key, cipher.Value);
            }
        }
    }

    private void CloseClient()
    {
        if (_jumpForward is not null)
        {
            try
            {
                _jumpForward.Stop();
            }
            catch (Exception ex) when (ex is SshException or ObjectDisposedException or SocketException or InvalidOperationException)
            {
                // The jump link is gone already.
            }

            _jumpForward.Dispose();
            _jumpForward = null;
        }

        _client?.Dispose();
        _client = null;
    }
}
