using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.BackendAi;

/// <summary>
/// SSH to the hosts of a cluster target: SSH.NET with the target's key, each host checked against its own pinned
/// key (none pinned: refused; another key: the host is blocked and audited, once). One kept-alive connection per
/// host, replaced when the host's pin or the target changes, all closed with the dashboard.
/// </summary>
public sealed class ClusterConnections(TargetConnections targets, IServiceScopeFactory scopes, AuditLog audit, TimeProvider clock, Metrics.DashboardMetrics metrics, ILogger<ClusterConnections> logger) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<int, Pooled> _pool = new();

    /// <summary>A shell on <paramref name="host"/>; refuses before connecting when its key is not pinned or was seen to change.</summary>
    public IRemoteShell Shell(Target target, ClusterHost host)
    {
        if (host.HostKeyState == HostKeyState.Mismatch)
        {
            throw new HostKeyMismatchException($"{host.Address} of {target.Name} presented a host key other than the pinned one ({host.PinnedFingerprint}): it is blocked until an Admin checks the new key and pins it again.");
        }

        if (host.HostKeyState != HostKeyState.Pinned || host.PinnedKey is null || host.PinnedKeyType is null)
        {
            throw new HostKeyNotPinnedException($"No host key is pinned for {host.Address} of {target.Name}: an Admin must check and pin one before anything connects.");
        }

        var stamp = $"{target.Version}/{host.PinnedFingerprint}/{host.User}";
        var pooled = _pool.AddOrUpdate(host.Id,
            _ => Open(target, host, stamp),
            (_, old) =>
            {
                if (old.Stamp == stamp)
                {
                    return old;
                }

                old.Connection.DisposeAsync().AsTask().ContinueWith(static _ => { }, TaskScheduler.Default);
                return Open(target, host, stamp);
            });
        // The targets' own guard: a changed key seen anywhere (also while waiting on a step) blocks this host.
        return new TargetConnections.GuardedShell(new SshNetShell(pooled.Connection), ex => BlockAsync(target, host, ex), ex => metrics.SshFailed(target.Name, ex));
    }

    private Pooled Open(Target target, ClusterHost host, string stamp) => new(stamp, new SshNetConnection(new SshNetEndpoint
    {
        Host = host.Host,
        Port = host.Port,
        User = host.User,
        Keys = targets.Keys(target),
        PinnedKey = new HostKey(host.PinnedKeyType!, host.PinnedKey!),
    }, logger));

    /// <summary>Closes a host's connection (after a re-pin or its removal).</summary>
    public async Task CloseAsync(int hostId)
    {
        if (_pool.TryRemove(hostId, out var pooled))
        {
            await pooled.Connection.DisposeAsync();
        }
    }

    private async Task BlockAsync(Target target, ClusterHost host, HostKeyMismatchException ex)
    {
        await CloseAsync(host.Id);
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var changed = await db.Set<ClusterHost>()
            .Where(h => h.Id == host.Id && h.HostKeyState == HostKeyState.Pinned)
            .ExecuteUpdateAsync(s => s.SetProperty(h => h.HostKeyState, HostKeyState.Mismatch).SetProperty(h => h.MismatchSeenAt, clock.GetUtcNow()));
        if (changed > 0)
        {
            await audit.RecordAsync("system", "cluster-host.hostkey-mismatch", target.Id, target.Name,
                new { host = host.Address, pinnedFingerprint = host.PinnedFingerprint, ssh = ex.StandardError?.Trim() });
            logger.LogError("Host key of {Host} in cluster {Target} changed: blocked", host.Address, target.Name);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var id in _pool.Keys)
        {
            await CloseAsync(id);
        }
    }

    private sealed record Pooled(string Stamp, SshNetConnection Connection);
}
