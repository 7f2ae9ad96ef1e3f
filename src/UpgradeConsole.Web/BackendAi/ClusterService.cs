using System.Security.Claims;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Core.BackendAi;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.BackendAi;

/// <summary>
/// Where a host's component lives, as templates: <c>{role}</c> (the host's first role), <c>{host}</c> and
/// <c>{port}</c> are replaced per host. The defaults are a packaged install: a venv per component under
/// <c>/opt/backend.ai</c>, the configuration in <c>/etc/backend.ai</c>, a systemd unit <c>backendai-&lt;role&gt;</c>.
/// </summary>
public sealed record HostTemplates
{
    public const string DefaultPythonEnv = "/opt/backend.ai/{role}/venv";
    public const string DefaultConfigPath = "/etc/backend.ai/{config}";
    public const string DefaultStop = "sudo -n systemctl stop backendai-{role}";
    public const string DefaultStart = "sudo -n systemctl start backendai-{role}";
    public const string DefaultStatus = "sudo -n systemctl is-active backendai-{role}";

    public string? PythonEnv { get; init; }

    /// <summary><c>{config}</c> stands for the role's own file name (manager.toml, agent.toml, webserver.conf …).</summary>
    public string? ConfigPath { get; init; }

    public string? StopCommand { get; init; }

    public string? StartCommand { get; init; }

    public string? StatusCommand { get; init; }

    public static string Fill(string template, string role, string host, int port) => template
        .Replace("{role}", role, StringComparison.Ordinal)
        .Replace("{config}", ClusterRoles.ConfigFile(role), StringComparison.Ordinal)
        .Replace("{host}", host, StringComparison.Ordinal)
        .Replace("{port}", port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
}

/// <summary>One host as an Admin adds it: <c>roles</c> like <c>agent</c> or <c>manager,storage-proxy</c>; empty settings take the templates' defaults.</summary>
public sealed record ClusterHostInput(string Roles, string Login)
{
    public string? Fingerprint { get; init; }

    public HostTemplates Settings { get; init; } = new();
}

/// <summary>Why a change to a cluster's hosts was refused: what the API answers (400, 404, 409).</summary>
public enum ClusterFailure
{
    None,

    /// <summary>The input itself is wrong (a bad line of the list).</summary>
    Invalid,

    /// <summary>No such target, or no such host in it.</summary>
    NotFound,

    /// <summary>The input is fine but the cluster or the host says no (there already, another key, unreachable).</summary>
    Conflict,
}

/// <summary>An outcome for a page or the API: done, or why not (one line each).</summary>
public sealed record ClusterResult(bool Succeeded, IReadOnlyList<string> Errors, IReadOnlyList<ClusterHost> Hosts, ClusterFailure Failure = ClusterFailure.None)
{
    public static ClusterResult Ok(IReadOnlyList<ClusterHost> hosts) => new(true, [], hosts);

    public static ClusterResult Fail(string error, ClusterFailure failure = ClusterFailure.Conflict) => new(false, [error], [], failure);
}

/// <summary>
/// The hosts of a Backend.AI target: listed by anyone signed in; added (one by one or a pasted list), removed,
/// scanned and pinned by an Admin. The role held now is checked in the database on every call; every change is
/// audited. A pasted list is taken whole or not at all.
/// </summary>
public sealed class ClusterService(AppDbContext db, UserAccess access, AuditLog audit, TimeProvider clock, ClusterConnections connections)
{
    /// <summary>What <see cref="ScanAsync"/> says of a host id the target does not have (the API answers 404).</summary>
    public const string NoSuchHost = "No such host in this cluster.";

    public Task<List<ClusterHost>> HostsAsync(int targetId, CancellationToken ct) =>
        db.Set<ClusterHost>().AsNoTracking().Where(h => h.TargetId == targetId).OrderBy(h => h.Id).ToListAsync(ct);

    public async Task<List<ClusterHost>> HostsAsync(int targetId, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Viewer);
        return await HostsAsync(targetId, ct);
    }

    /// <summary>Adds one host.</summary>
    public async Task<ClusterResult> AddAsync(int targetId, ClusterHostInput input, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Admin);
        var words = $"{input.Roles?.Replace(" ", "", StringComparison.Ordinal)} {input.Login?.Trim()}{(string.IsNullOrWhiteSpace(input.Fingerprint) ? "" : " " + input.Fingerprint.Trim())}";
        if (!ClusterHostList.TryParseLine(1, words, out var line, out var error))
        {
            return ClusterResult.Fail(char.ToUpperInvariant(error![0]) + error[1..] + ".", ClusterFailure.Invalid);
        }

        return await AddLinesAsync(targetId, [line!], input.Settings, actor, "cluster-host.add", ct);
    }

    /// <summary>Adds every host of a pasted list (<see cref="ClusterHostList"/>), or none when a line is bad, a host is there already or a fingerprint does not match.</summary>
    public async Task<ClusterResult> PasteAsync(int targetId, string text, HostTemplates settings, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Admin);
        if (!ClusterHostList.TryParse(text, out var lines, out var error))
        {
            return ClusterResult.Fail(error!, ClusterFailure.Invalid);
        }

        return await AddLinesAsync(targetId, lines, settings, actor, "cluster-host.paste", ct);
    }

    private async Task<ClusterResult> AddLinesAsync(int targetId, IReadOnlyList<ClusterHostLine> lines, HostTemplates settings, ClaimsPrincipal actor, string action, CancellationToken ct)
    {
        var target = await db.Set<Target>().AsNoTracking().FirstOrDefaultAsync(t => t.Id == targetId, ct);
        if (target is null)
        {
            return ClusterResult.Fail("No such target.", ClusterFailure.NotFound);
        }

        if (target.Product != BackendAiProduct.ProductId)
        {
            return ClusterResult.Fail($"{target.Name} is not a Backend.AI target: only a Backend.AI target is a set of hosts.");
        }

        var existing = await HostsAsync(targetId, ct);
        var taken = existing.ToDictionary(h => h.Address, StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines)
        {
            if (taken.ContainsKey(line.Address))
            {
                return ClusterResult.Fail($"Line {line.LineNumber} ({line.Address}): this host is in the cluster already; remove it first to change it.");
            }
        }

        var now = clock.GetUtcNow();
        var hosts = lines.Select(l => New(targetId, l, settings, now)).ToList();

        // Fingerprints given with the list are pinned only if the host presents exactly that key now.
        var pinning = lines.Select((l, i) => (Line: l, Host: hosts[i])).Where(x => x.Line.Fingerprint is not null).ToList();
        using var gate = new SemaphoreSlim(16);
        var problems = await Task.WhenAll(pinning.Select(async x =>
        {
            await gate.WaitAsync(ct);
            try
            {
                var keys = await HostKeyScanner.ScanAsync(x.Host.Host, x.Host.Port, ct);
                var key = keys.FirstOrDefault(k => k.Fingerprint == x.Line.Fingerprint);
                if (key is null)
                {
                    return $"Line {x.Line.LineNumber} ({x.Line.Address}): the host presents {(keys.Count == 0 ? "no key" : string.Join(", ", keys.Select(k => k.Fingerprint)))}, not {x.Line.Fingerprint}.";
                }

                Pin(x.Host, key, actor);
                return null;
            }
            catch (Exception ex) when (ex is SshConnectionException or TimeoutException or InvalidOperationException)
            {
                return $"Line {x.Line.LineNumber} ({x.Line.Address}): its host key could not be read: {ex.Message}";
            }
            finally
            {
                gate.Release();
            }
        }));
        if (problems.FirstOrDefault(p => p is not null) is { } problem)
        {
            return ClusterResult.Fail(problem);
        }

        db.AddRange(hosts);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException)
        {
            return ClusterResult.Fail("A host of this list was added meanwhile; look at the cluster's hosts again.");
        }

        await audit.RecordAsync(actor, action, targetId, target.Name,
            new { hosts = hosts.Select(h => new { h.Roles, address = h.Address, h.User, h.PythonEnv, h.ConfigPath, h.StopCommand, h.StartCommand, h.StatusCommand, pinned = h.PinnedFingerprint }) }, ct);
        return ClusterResult.Ok(hosts);
    }

    private static ClusterHost New(int targetId, ClusterHostLine line, HostTemplates t, DateTimeOffset now)
    {
        var role = line.Roles[0];
        string Fill(string? template, string fallback) => HostTemplates.Fill(string.IsNullOrWhiteSpace(template) ? fallback : template.Trim(), role, line.Host, line.Port);
        return new ClusterHost
        {
            TargetId = targetId,
            Roles = string.Join(',', line.Roles),
            Host = line.Host,
            Port = line.Port,
            User = line.User,
            PythonEnv = Fill(t.PythonEnv, HostTemplates.DefaultPythonEnv),
            ConfigPath = Fill(t.ConfigPath, HostTemplates.DefaultConfigPath),
            StopCommand = Fill(t.StopCommand, HostTemplates.DefaultStop),
            StartCommand = Fill(t.StartCommand, HostTemplates.DefaultStart),
            StatusCommand = Fill(t.StatusCommand, HostTemplates.DefaultStatus),
            HostKeyState = HostKeyState.Unpinned,
            CreatedAt = now,
        };
    }

    private void Pin(ClusterHost host, HostKey key, ClaimsPrincipal actor)
    {
        (host.PinnedKeyType, host.PinnedKey, host.PinnedFingerprint) = (key.Type, key.Base64, key.Fingerprint);
        host.HostKeyState = HostKeyState.Pinned;
        host.MismatchSeenAt = null;
        host.PinnedAt = clock.GetUtcNow();
        host.PinnedBy = actor.Identity?.Name;
    }

    public async Task<ClusterResult> RemoveAsync(int targetId, int hostId, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Admin);
        var host = await db.Set<ClusterHost>().FirstOrDefaultAsync(h => h.Id == hostId && h.TargetId == targetId, ct);
        if (host is null)
        {
            return ClusterResult.Fail(NoSuchHost, ClusterFailure.NotFound);
        }

        db.Remove(host);
        await db.SaveChangesAsync(ct);
        await connections.CloseAsync(hostId);
        await audit.RecordAsync(actor, "cluster-host.remove", targetId, null, new { host = host.Address, host.Roles, pinned = host.PinnedFingerprint }, ct);
        return ClusterResult.Ok([]);
    }

    /// <summary>The keys a host presents now, to compare with its own before pinning.</summary>
    public async Task<(IReadOnlyList<HostKey> Keys, string? Error)> ScanAsync(int targetId, int hostId, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Admin);
        var host = await db.Set<ClusterHost>().AsNoTracking().FirstOrDefaultAsync(h => h.Id == hostId && h.TargetId == targetId, ct);
        if (host is null)
        {
            return ([], NoSuchHost);
        }

        try
        {
            return (await HostKeyScanner.ScanAsync(host.Host, host.Port, ct), null);
        }
        catch (Exception ex) when (ex is SshConnectionException or TimeoutException or InvalidOperationException)
        {
            return ([], ex.Message);
        }
    }

    /// <summary>Pins the key with <paramref name="fingerprint"/> if the host presents it now (scanned again).</summary>
    public async Task<ClusterResult> PinAsync(int targetId, int hostId, string fingerprint, ClaimsPrincipal actor, CancellationToken ct)
    {
        var (keys, error) = await ScanAsync(targetId, hostId, actor, ct);
        if (error is not null)
        {
            return ClusterResult.Fail(error, error == NoSuchHost ? ClusterFailure.NotFound : ClusterFailure.Conflict);
        }

        var host = await db.Set<ClusterHost>().FirstAsync(h => h.Id == hostId, ct);
        var key = keys.FirstOrDefault(k => k.Fingerprint == fingerprint.Trim());
        if (key is null)
        {
            return ClusterResult.Fail($"The fingerprint {fingerprint.Trim()} does not match what {host.Address} presents now: {(keys.Count == 0 ? "no key" : string.Join(", ", keys.Select(k => $"{k.Fingerprint} ({k.Type})")))}.");
        }

        var old = host.PinnedFingerprint;
        var wasMismatch = host.HostKeyState == HostKeyState.Mismatch;
        Pin(host, key, actor);
        await db.SaveChangesAsync(ct);
        await connections.CloseAsync(hostId);
        await audit.RecordAsync(actor, old is null ? "cluster-host.pin" : "cluster-host.repin", targetId, null,
            new { host = host.Address, oldFingerprint = old, newFingerprint = key.Fingerprint, keyType = key.Type, afterMismatch = wasMismatch }, ct);
        return ClusterResult.Ok([host]);
    }
}
