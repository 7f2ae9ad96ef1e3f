using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Renci.SshNet;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Targets;

/// <summary>
/// The one place every SSH connection to a target is made, on either transport. Refuses outright
/// when no key is pinned or a mismatch was seen; and whatever reports a changed host key later (a
/// command, a step, a forward) blocks the target and writes the audit event here, once.
/// SSH.NET targets share one kept-alive connection each (reconnected when it drops, closed with the
/// dashboard); OpenSSH targets share a ControlMaster with a short ControlPersist, ended at shutdown.
/// </summary>
public sealed class TargetConnections(
    DataDirectory data,
    IDataProtectionProvider protection,
    IServiceScopeFactory scopes,
    AuditLog audit,
    TimeProvider clock,
    ILoggerFactory loggers,
    Metrics.DashboardMetrics metrics,
    SharedForwards forwards) : IAsyncDisposable
{
    /// <summary>How long an idle OpenSSH master outlives its last command (also after a crash of the dashboard).</summary>
    public static readonly TimeSpan ControlPersist = TimeSpan.FromSeconds(60);

    private readonly IDataProtector _keys = protection.CreateProtector("UpgradeConsole.Targets.PrivateKey.v1");
    private readonly ILogger _logger = loggers.CreateLogger<TargetConnections>();
    private readonly ConcurrentDictionary<int, Pooled> _pool = new();
    private readonly SemaphoreSlim _poolGate = new(1, 1);

    public string Protect(string secret) => _keys.Protect(secret);

    public string ProtectKey(string privateKey) => _keys.Protect(SshKeys.Normalize(privateKey));

    /// <summary>A shell on the target over its chosen transport, with the host-key policy applied to everything it does.</summary>
    public async Task<IRemoteShell> ShellAsync(Target target, CancellationToken ct)
    {
        RefuseUnlessPinned(target);
        IRemoteShell shell = target.Transport == SshTransport.SshNet
            ? new SshNetShell(await SshNetConnectionAsync(target, ct))
            : await OpenSshShellAsync(target, ct);
        return new GuardedShell(shell, ex => BlockAsync(target, ex), ex => metrics.SshFailed(target.Name, ex));
    }

    /// <summary>Asks the target for its host keys (for the pin dialog), through its jump host when it has one.</summary>
    public async Task<IReadOnlyList<HostKey>> ScanAsync(Target target, CancellationToken ct)
    {
        if (target.JumpHost is null)
        {
            return await HostKeyScanner.ScanAsync(target.Host, target.Port, ct);
        }

        if (target.JumpPinnedKey is null || !JumpHost.TryParse(target.JumpHost, out var jump))
        {
            throw new HostKeyNotPinnedException("Pin the jump host's key first.");
        }

        if (target.Transport == SshTransport.SshNet)
        {
            // The jump host's own pinned connection carries a forward to the target's SSH port.
            await using var connection = new SshNetConnection(JumpEndpoint(target, jump!, Keys(target)), _logger);
            return await HostKeyScanner.ScanThroughAsync(new SshNetShell(connection), target.Host, target.Port, ct);
        }

        return await HostKeyScanner.ScanFromAsync(await JumpShellAsync(target, jump!, ct), target.Host, target.Port, ct);
    }

    /// <summary>
    /// Marks the target blocked after its host presented another key (a conditional update: only the
    /// first report is recorded) and writes the audit event with both fingerprints.
    /// </summary>
    public async Task BlockAsync(Target target, HostKeyMismatchException ex)
    {
        await CloseAsync(target.Id);
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var changed = await db.Targets
            .Where(t => t.Id == target.Id && t.HostKeyState == HostKeyState.Pinned)
            .ExecuteUpdateAsync(s => s
                .SetProperty(t => t.HostKeyState, HostKeyState.Mismatch)
                .SetProperty(t => t.MismatchSeenAt, clock.GetUtcNow())
                .SetProperty(t => t.MismatchDetail, ex.StandardError == null ? null : ex.StandardError.Trim()));
        if (changed == 0)
        {
            return;
        }

        await audit.RecordAsync("system", "target.hostkey-mismatch", target.Id, target.Name,
            new { pinnedFingerprint = target.PinnedFingerprint, transport = target.Transport.ToString(), ssh = ex.StandardError?.Trim() });
        _logger.LogError("Host key of target {Target} changed: blocked", target.Name);
    }

    /// <summary>Closes the target's connections (after a re-pin, a key change, an edit or a mismatch).</summary>
    public async Task CloseAsync(int targetId)
    {
        // The kept forward to its database first: it rides on the connection closed next.
        await forwards.CloseAsync(targetId);
        if (_pool.TryRemove(targetId, out var pooled))
        {
            await pooled.Connection.DisposeAsync();
        }

        foreach (var socket in new[] { "cm", "cmj" })
        {
            // Not TargetDirectory(): closing never creates anything (it also runs at shutdown).
            var path = Path.Combine(data.Combine("ssh", targetId.ToString(CultureInfo.InvariantCulture)), socket);
            await new OpenSshShell(new SshEndpoint
            {
                Host = "unused",
                User = "unused",
                Identity = new SshIdentity.DashboardUser(),
                KnownHostsFile = "/dev/null",
                ControlPath = path,
            }).CloseAsync();
        }
    }

    /// <summary>Removes everything the dashboard kept on disk for a deleted target.</summary>
    public async Task ForgetAsync(int targetId)
    {
        await CloseAsync(targetId);
        var dir = TargetDirectory(targetId);
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>At shutdown: no SSH.NET connection and no OpenSSH master outlives the dashboard.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var id in _pool.Keys)
        {
            await CloseAsync(id);
        }

        var root = data.Combine("ssh");
        if (Directory.Exists(root))
        {
            foreach (var dir in Directory.EnumerateDirectories(root))
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                {
                    await CloseAsync(id);
                }
            }
        }

        _poolGate.Dispose();
    }

    private static void RefuseUnlessPinned(Target target)
    {
        // A pinned host CA stands in for a pinned host key (SSH.NET only: the OpenSSH transport reads a known_hosts of pinned keys).
        var caOnly = target.TrustsHostCertificateAuthority;
        switch (target.HostKeyState)
        {
            case HostKeyState.Unpinned when caOnly:
                break;
            case HostKeyState.Unpinned:
                throw new HostKeyNotPinnedException($"No host key is pinned for {target.Name}: an Admin must check and pin one before anything connects.");
            case HostKeyState.Mismatch:
                throw new HostKeyMismatchException(
                    $"{target.Name} presented a host key other than the pinned one ({target.PinnedFingerprint}). This may be a man-in-the-middle attack: " +
                    "every action on this target is blocked until an Admin checks the new key and pins it again.");
            default:
                break;
        }

        if ((target.PinnedKey is null || target.PinnedKeyType is null) && !caOnly)
        {
            throw new HostKeyNotPinnedException($"No host key is pinned for {target.Name}: an Admin must check and pin one before anything connects.");
        }

        if (target.JumpHost is not null && target.JumpPinnedKey is null)
        {
            throw new HostKeyNotPinnedException($"The jump host of {target.Name} has no pinned key: pin it first.");
        }
    }

    /// <summary>The target's pooled SSH.NET connection; a new one when the target changed (its version) since.</summary>
    private async Task<SshNetConnection> SshNetConnectionAsync(Target target, CancellationToken ct)
    {
        if (_pool.TryGetValue(target.Id, out var pooled) && pooled.Version == target.Version)
        {
            return pooled.Connection;
        }

        await _poolGate.WaitAsync(ct);
        try
        {
            if (_pool.TryGetValue(target.Id, out pooled))
            {
                if (pooled.Version == target.Version)
                {
                    return pooled.Connection;
                }

                _pool.TryRemove(target.Id, out _);
                await pooled.Connection.DisposeAsync();
            }

            var keys = Keys(target);
            var endpoint = new SshNetEndpoint
            {
                Host = target.Host,
                Port = target.Port,
                User = target.SshUser,
                Keys = keys,
                PinnedKey = target.PinnedKey is null || target.PinnedKeyType is null ? null : new HostKey(target.PinnedKeyType, target.PinnedKey),
                HostCertificateAuthority = target.HostCertificateAuthority,
                Jump = JumpHost.TryParse(target.JumpHost, out var jump) ? JumpEndpoint(target, jump!, keys) : null,
            };
            var connection = new SshNetConnection(endpoint, _logger);
            _pool[target.Id] = new Pooled(target.Version, connection);
            metrics.SshConnectionOpened(target.Name);
            return connection;
        }
        finally
        {
            _poolGate.Release();
        }
    }

    private static SshNetEndpoint JumpEndpoint(Target target, JumpHost jump, IReadOnlyList<IPrivateKeySource> keys) => new()
    {
        Host = jump.Host,
        Port = jump.Port,
        User = jump.User,
        Keys = keys,
        PinnedKey = new HostKey(target.JumpPinnedKeyType!, target.JumpPinnedKey!),
    };

    /// <summary>The target's key for SSH.NET, decrypted into memory only.</summary>
    internal IReadOnlyList<IPrivateKeySource> Keys(Target target)
    {
        var passphrase = target.ProtectedKeyPassphrase is null ? null : _keys.Unprotect(target.ProtectedKeyPassphrase);
        return target.AuthMethod switch
        {
            TargetAuthMethod.StoredKey when target.ProtectedPrivateKey is not null => [SshKeys.FromText(_keys.Unprotect(target.ProtectedPrivateKey), passphrase, certificate: target.UserCertificate)],
            TargetAuthMethod.StoredKey => throw new InvalidOperationException($"{target.Name} has no stored key; an Admin must paste one."),
            TargetAuthMethod.KeyFile => [SshKeys.FromFile(target.KeyFilePath!, passphrase, target.UserCertificate)],
            _ => throw new InvalidOperationException(
                $"{target.Name} uses the dashboard user's ssh-agent, which only the System OpenSSH client can use: choose that transport in the target's settings."),
        };
    }

    private async Task<OpenSshShell> OpenSshShellAsync(Target target, CancellationToken ct)
    {
        var dir = TargetDirectory(target.Id);
        var jump = JumpHost.TryParse(target.JumpHost, out var parsed) ? parsed! with { HostKeyAlgorithm = target.JumpPinnedKeyType } : null;
        var lines = new List<string> { new HostKey(target.PinnedKeyType!, target.PinnedKey!).KnownHostsLine(target.Host, target.Port) };
        if (jump is not null)
        {
            lines.Add(new HostKey(target.JumpPinnedKeyType!, target.JumpPinnedKey!).KnownHostsLine(jump.Host, jump.Port));
        }

        var endpoint = new SshEndpoint
        {
            Host = target.Host,
            Port = target.Port,
            User = target.SshUser,
            Identity = Identity(target),
            KnownHostsFile = await KnownHostsAsync(dir, "known_hosts", lines, ct),
            HostKeyAlgorithm = target.PinnedKeyType,
            ControlPath = Path.Combine(dir, "cm"),
            ControlPersist = ControlPersist,
            Jump = jump,
            ConfigFile = jump is null ? null : Path.Combine(dir, "ssh_config"),
        };
        if (jump is not null)
        {
            await KnownHostsAsync(dir, "ssh_config", [endpoint.JumpConfig()], ct);
        }

        return new OpenSshShell(endpoint);
    }

    /// <summary>A shell on the target's jump host alone (OpenSSH: to scan the target's key from there).</summary>
    private async Task<OpenSshShell> JumpShellAsync(Target target, JumpHost jump, CancellationToken ct)
    {
        var dir = TargetDirectory(target.Id);
        return new OpenSshShell(new SshEndpoint
        {
            Host = jump.Host,
            Port = jump.Port,
            User = jump.User,
            Identity = Identity(target),
            KnownHostsFile = await KnownHostsAsync(dir, "known_hosts.jump", [new HostKey(target.JumpPinnedKeyType!, target.JumpPinnedKey!).KnownHostsLine(jump.Host, jump.Port)], ct),
            HostKeyAlgorithm = target.JumpPinnedKeyType,
            ControlPath = Path.Combine(dir, "cmj"),
            ControlPersist = ControlPersist,
        });
    }

    /// <summary>
    /// Writes a file derived from the database (the one truth, shared by all nodes): known_hosts, the jump
    /// host's ssh_config; through a temporary file of this call's own, so concurrent calls never share a half-written file.
    /// </summary>
    private static async Task<string> KnownHostsAsync(string dir, string name, IReadOnlyList<string> lines, CancellationToken ct)
    {
        var path = Path.Combine(dir, name);
        var temp = $"{path}.{Guid.NewGuid():N}.tmp";
        await File.WriteAllLinesAsync(temp, lines, ct);
        File.Move(temp, path, overwrite: true);
        return path;
    }

    /// <summary>How the System OpenSSH client authenticates: never with a key stored in the dashboard (see <see cref="TargetService.OpenSshStoredKeyRefusal"/>).</summary>
    private static SshIdentity Identity(Target target) => target.AuthMethod switch
    {
        TargetAuthMethod.StoredKey => throw new InvalidOperationException($"{target.Name}: {TargetService.OpenSshStoredKeyRefusal}"),
        TargetAuthMethod.KeyFile => new SshIdentity.KeyFile(target.KeyFilePath!),
        _ => new SshIdentity.DashboardUser(),
    };

    private string TargetDirectory(int targetId)
    {
        var dir = Path.Combine(data.Subdirectory("ssh"), targetId.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return dir;
    }

    private sealed record Pooled(Guid Version, SshNetConnection Connection);

    /// <summary>Applies the host-key policy to everything a shell does: a mismatch anywhere blocks the target.</summary>
    /// <summary>
    /// A shell that reports a changed host key (<paramref name="onMismatch"/>: block and audit) and counts SSH failures,
    /// whatever raised them: a command, a step's start or its wait, a forward. Every connection the dashboard makes goes
    /// through one (a target's, a cluster host's).
    /// </summary>
    internal sealed class GuardedShell(IRemoteShell inner, Func<HostKeyMismatchException, Task> onMismatch, Action<Exception> onFailure) : IRemoteShell
    {
        public string Destination => inner.Destination;

        public Task<RemoteResult> RunAsync(string script, CancellationToken cancellationToken, TimeSpan? timeout = null) =>
            GuardAsync(() => inner.RunAsync(script, cancellationToken, timeout));

        public async Task<IRemoteProcess> StartAsync(string script, CancellationToken cancellationToken) =>
            new GuardedProcess(await GuardAsync(() => inner.StartAsync(script, cancellationToken)), this);

        public Task<IPortForward> ForwardAsync(string remoteHost, int remotePort, CancellationToken cancellationToken) =>
            GuardAsync(() => inner.ForwardAsync(remoteHost, remotePort, cancellationToken));

        public object? Connection => inner.Connection;

        public async Task<IRemoteSession?> OpenSessionAsync(string script, CancellationToken cancellationToken) =>
            await GuardAsync(() => inner.OpenSessionAsync(script, cancellationToken)) is { } session ? new GuardedSession(session, this) : null;

        public async Task<T> GuardAsync<T>(Func<Task<T>> action)
        {
            try
            {
                return await action();
            }
            catch (HostKeyMismatchException ex)
            {
                onFailure(ex);
                await onMismatch(ex);
                throw;
            }
            catch (Exception ex) when (ex is SshConnectionException or TimeoutException)
            {
                onFailure(ex);
                throw;
            }
        }

        private sealed class GuardedSession(IRemoteSession inner, GuardedShell shell) : GuardedProcess(inner, shell), IRemoteSession
        {
            public Stream Input => inner.Input;
        }

        private class GuardedProcess(IRemoteProcess inner, GuardedShell shell) : IRemoteProcess
        {
            public Stream Output => inner.Output;

            public Task<RemoteResult> WaitAsync(CancellationToken cancellationToken) => shell.GuardAsync(() => inner.WaitAsync(cancellationToken));

            public ValueTask DisposeAsync() => inner.DisposeAsync();
        }
    }
}
