using System.ComponentModel.DataAnnotations;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Targets;

/// <summary>An outcome a page can show: done, or the reasons it was refused.</summary>
public sealed record TargetResult(bool Succeeded, IReadOnlyList<string> Errors, int? TargetId = null)
{
    public static TargetResult Ok(int? id = null) => new(true, [], id);

    public static TargetResult Fail(params string[] errors) => new(false, errors);
}

/// <summary>A target as the targets list shows it: with its newest run and preflight, if any.</summary>
public sealed record TargetListRow(Target Target, Runs.Run? LastRun, Fractal.PreflightRun? LastPreflight);

/// <summary>A saved "Test connection" result.</summary>
public sealed record ConnectionTestRecord(DateTimeOffset At, bool Succeeded, ConnectionProbeResult? Probe, string? Error);

/// <summary>
/// A saved discovery result (secrets already masked): fractal-server's own result in <see cref="Result"/>;
/// another product's in <see cref="Facts"/>, what it found as labelled lines, with <see cref="InstalledVersion"/>.
/// </summary>
public sealed record DiscoveryRecord(DateTimeOffset At, FractalDiscoveryResult? Result, string? Error)
{
    public string? InstalledVersion { get; init; }

    public IReadOnlyList<DiscoveredFact>? Facts { get; init; }

    /// <summary>A cluster's hosts, version spread, database and sessions (Backend.AI).</summary>
    public Core.BackendAi.ClusterFindings? Cluster { get; init; }

    /// <summary>The installed version, whichever product found it.</summary>
    public string? Installed => InstalledVersion ?? Result?.InstalledVersion;
}

/// <summary>One thing a product's discovery found, as the target page shows it; <see cref="Problem"/> marks what is wrong.</summary>
public sealed record DiscoveredFact(string Label, string Value, bool Problem = false);

/// <summary>
/// Targets: adding and editing them, pinning host keys, testing the connection and discovering
/// what runs there. Every change is an audit event; no secret ever leaves in a result. Every call made
/// for a person first checks, in the database, the role they hold now (<see cref="UserAccess"/>): an open
/// tab or a token must not outlive a demotion. Admin changes targets and keys, Operator tests and discovers.
/// </summary>
public sealed class TargetService(AppDbContext db, TargetConnections connections, UpgradeConsole.Web.Runbooks.RunbookCatalog products, AuditLog audit, TimeProvider clock, UserAccess access, IServiceProvider services)
{
    /// <summary>
    /// Why the System OpenSSH client takes no stored key: it could only be given one through a file or an
    /// ssh-agent, and a stored key is decrypted into the dashboard's memory only (ADR 0014).
    /// </summary>
    public const string OpenSshStoredKeyRefusal =
        "The System OpenSSH client does not take a key stored in the dashboard (it would have to be written to a file or an ssh-agent): " +
        "choose SSH.NET for a stored key, or give the System OpenSSH client a key file on the dashboard's host or the dashboard user's ssh-agent.";

    public Task<List<Target>> ListAsync(CancellationToken ct = default) =>
        db.Set<Target>().AsNoTracking().OrderBy(t => t.Name).ToListAsync(ct);

    public Task<Target?> FindAsync(int id, CancellationToken ct = default) =>
        db.Set<Target>().AsNoTracking().FirstOrDefaultAsync(t => t.Id == id, ct);

    /// <summary>A target for <paramref name="actor"/> to read (any role held now).</summary>
    public async Task<Target?> FindAsync(int id, ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Viewer);
        return await FindAsync(id, ct);
    }

    /// <summary>Every target by name, each with its newest run and preflight (by id: ids grow with time).</summary>
    public async Task<IReadOnlyList<TargetListRow>> ListWithLatestAsync(ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Viewer);
        var targets = await ListAsync(ct);
        var runIds = await db.Runs.GroupBy(r => r.TargetId).Select(g => g.Max(r => r.Id)).ToListAsync(ct);
        var runs = await db.Runs.AsNoTracking().Where(r => runIds.Contains(r.Id)).ToDictionaryAsync(r => r.TargetId, ct);
        var preflightIds = await db.PreflightRuns.GroupBy(p => p.TargetId).Select(g => g.Max(p => p.Id)).ToListAsync(ct);
        var preflights = await db.PreflightRuns.AsNoTracking().Where(p => preflightIds.Contains(p.Id)).ToDictionaryAsync(p => p.TargetId, ct);
        return targets.Select(t => new TargetListRow(t, runs.GetValueOrDefault(t.Id), preflights.GetValueOrDefault(t.Id))).ToList();
    }

    public async Task<TargetResult> CreateAsync(TargetForm form, ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Admin);
        if (Validate(form) is { Count: > 0 } errors)
        {
            return new TargetResult(false, errors);
        }

        if (form.AuthMethod == TargetAuthMethod.StoredKey && string.IsNullOrWhiteSpace(form.PrivateKey))
        {
            return TargetResult.Fail("Paste or upload the private key the dashboard should use.");
        }

        if (await db.Set<Target>().AnyAsync(t => t.Name == form.Name.Trim(), ct))
        {
            return TargetResult.Fail($"A target named '{form.Name.Trim()}' exists already.");
        }

        var target = new Target { CreatedAt = clock.GetUtcNow(), HostKeyState = HostKeyState.Unpinned };
        var keyError = await ApplyAsync(target, form, ct);
        if (keyError is not null)
        {
            return TargetResult.Fail(keyError);
        }

        target.UpdatedAt = target.CreatedAt;
        db.Add(target);
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(actor, "target.create", target.Id, target.Name, Describe(target), ct);
        return TargetResult.Ok(target.Id);
    }

    public async Task<TargetResult> UpdateAsync(int id, TargetForm form, ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Admin);
        if (Validate(form) is { Count: > 0 } errors)
        {
            return new TargetResult(false, errors);
        }

        var target = await db.Set<Target>().FirstOrDefaultAsync(t => t.Id == id, ct);
        if (target is null)
        {
            return TargetResult.Fail("No such target.");
        }

        if (target.Version != form.Version)
        {
            return TargetResult.Fail("Someone else changed this target after you opened it. Reload the page to see their changes, then edit again.");
        }

        if (await db.Set<Target>().AnyAsync(t => t.Name == form.Name.Trim() && t.Id != id, ct))
        {
            return TargetResult.Fail($"A target named '{form.Name.Trim()}' exists already.");
        }

        var before = Describe(target);
        var (oldHost, oldPort, oldJump) = (target.Host, target.Port, target.JumpHost);
        var keyError = await ApplyAsync(target, form, ct);
        if (keyError is not null)
        {
            return TargetResult.Fail(keyError);
        }

        // A pinned key belongs to an address: a new address must be checked and pinned again.
        if (target.Host != oldHost || target.Port != oldPort)
        {
            ClearPin(target, jump: false);
        }

        if (target.JumpHost != oldJump)
        {
            ClearPin(target, jump: true);
        }

        target.UpdatedAt = clock.GetUtcNow();
        target.Version = Guid.NewGuid();
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateConcurrencyException)
        {
            return TargetResult.Fail("Someone else changed this target meanwhile. Reload the page and edit again.");
        }

        await connections.CloseAsync(id);
        await audit.RecordAsync(actor, "target.edit", id, target.Name, new { before, after = Describe(target), keyReplaced = !string.IsNullOrWhiteSpace(form.PrivateKey) }, ct);
        return TargetResult.Ok(id);
    }

    /// <summary>
    /// Deletes a target: refused while a run is active on it. Its stored private key and passphrase are
    /// destroyed and its connections closed; the row stays, left out of every query, because its runs'
    /// history refers to it (its name is freed for a new target).
    /// </summary>
    public async Task<TargetResult> DeleteAsync(int id, ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Admin);
        var target = await db.Set<Target>().FirstOrDefaultAsync(t => t.Id == id, ct);
        if (target is null)
        {
            return TargetResult.Fail("No such target.");
        }

        if (await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.ActiveTargetId == id, ct) is { } active)
        {
            return TargetResult.Fail($"Run {active.Id} is active on this target ({active.State}); finish, roll back or abandon it before deleting the target.");
        }

        var described = Describe(target);
        var name = target.Name;
        var hadKey = target.ProtectedPrivateKey is not null;
        (target.ProtectedPrivateKey, target.ProtectedKeyPassphrase, target.PrivateKeyFingerprint) = (null, null, null);
        ClearPin(target, jump: false);
        ClearPin(target, jump: true);
        var suffix = $" (deleted {id})";
        target.Name = (name.Length + suffix.Length > 100 ? name[..(100 - suffix.Length)] : name) + suffix;
        target.DeletedAt = clock.GetUtcNow();
        target.UpdatedAt = target.DeletedAt.Value;
        target.Version = Guid.NewGuid();
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException)
        {
            // A run planned at the same moment holds the target (one active run per target is a unique index).
            return TargetResult.Fail("The target changed meanwhile (a run planned on it?). Look again before deleting it.");
        }

        await connections.ForgetAsync(id);
        await audit.RecordAsync(actor, "target.delete", id, name, new { target = described, storedKeyDestroyed = hadKey }, ct);
        return TargetResult.Ok();
    }

    /// <summary>Asks the host (or its jump host) for its keys, to show their fingerprints to an Admin.</summary>
    public async Task<(IReadOnlyList<HostKey> Keys, string? Error)> ScanAsync(int id, bool jump, ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Admin);
        return await ScanCoreAsync(id, jump, ct);
    }

    private async Task<(IReadOnlyList<HostKey> Keys, string? Error)> ScanCoreAsync(int id, bool jump, CancellationToken ct)
    {
        var target = await FindAsync(id, ct);
        if (target is null)
        {
            return ([], "No such target.");
        }

        try
        {
            if (jump)
            {
                if (!JumpHost.TryParse(target.JumpHost, out var j))
                {
                    return ([], "This target has no jump host.");
                }

                return (await HostKeyScanner.ScanAsync(j!.Host, j.Port, ct), null);
            }

            return (await connections.ScanAsync(target, ct), null);
        }
        catch (Exception ex) when (ex is SshConnectionException or HostKeyNotPinnedException or ArgumentException or InvalidOperationException or TimeoutException)
        {
            return ([], ex.Message);
        }
    }

    /// <summary>
    /// Pins the key with <paramref name="fingerprint"/>, which the Admin confirmed on screen. The host
    /// is scanned again and only a key it presents now with exactly that fingerprint is pinned.
    /// </summary>
    public async Task<TargetResult> PinAsync(int id, string fingerprint, bool jump, ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Admin);
        var (keys, error) = await ScanCoreAsync(id, jump, ct);
        if (error is not null)
        {
            return TargetResult.Fail(error);
        }

        var key = keys.FirstOrDefault(k => k.Fingerprint == fingerprint);
        if (key is null)
        {
            // Usually a typo or a fingerprint copied from another host, not a changed key: say what the host shows.
            var presented = keys.Count == 0 ? "no key" : string.Join(", ", keys.Select(k => $"{k.Fingerprint} ({k.Type})"));
            return TargetResult.Fail($"The fingerprint {fingerprint} does not match what the host{(jump ? " (jump host)" : "")} presents now: {presented}. " +
                "Compare with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on it) and pin the one that matches.");
        }

        var target = await db.Set<Target>().FirstAsync(t => t.Id == id, ct);
        var old = jump ? target.JumpPinnedFingerprint : target.PinnedFingerprint;
        var wasMismatch = target.HostKeyState == HostKeyState.Mismatch;
        if (jump)
        {
            (target.JumpPinnedKeyType, target.JumpPinnedKey, target.JumpPinnedFingerprint) = (key.Type, key.Base64, key.Fingerprint);
        }
        else
        {
            (target.PinnedKeyType, target.PinnedKey, target.PinnedFingerprint) = (key.Type, key.Base64, key.Fingerprint);
            target.HostKeyState = HostKeyState.Pinned;
            target.MismatchDetail = null;
            target.MismatchSeenAt = null;
        }

        target.PinnedAt = clock.GetUtcNow();
        target.PinnedBy = actor.Identity?.Name;
        target.Version = Guid.NewGuid();
        await db.SaveChangesAsync(ct);
        await connections.CloseAsync(id);
        await audit.RecordAsync(actor, old is null ? "target.pin" : "target.repin", id, target.Name,
            new { host = jump ? target.JumpHost : $"{target.Host}:{target.Port}", jumpHost = jump, oldFingerprint = old, newFingerprint = key.Fingerprint, keyType = key.Type, afterMismatch = wasMismatch }, ct);
        return TargetResult.Ok(id);
    }

    public async Task<ConnectionTestRecord> TestAsync(int id, ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Operator);
        var record = await RemoteAsync(id, async (target, shell) =>
        {
            var probe = await ConnectionProbe.RunAsync(shell, ct);
            return new ConnectionTestRecord(clock.GetUtcNow(), true, probe, null);
        }, error => new ConnectionTestRecord(clock.GetUtcNow(), false, null, error), ct);

        await SaveAsync(id, t => t.LastTestJson = JsonSerializer.Serialize(record, JsonSerializerOptions.Web), ct);
        await audit.RecordAsync(actor, "target.test", id, null, new { record.Succeeded, record.Error, roundTripMs = record.Probe?.RoundTrip.TotalMilliseconds }, ct);
        return record;
    }

    public async Task<DiscoveryRecord> DiscoverAsync(int id, ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Operator);
        // A cluster is looked at host by host, each through its own pinned connection.
        var record = await FindAsync(id, ct) is { } cluster && services.GetKeyedService<UpgradeConsole.Web.Runbooks.IProductRuntime>(cluster.Product) is UpgradeConsole.Web.Runbooks.IClusterDiscovery hosts
            ? await hosts.DiscoverClusterAsync(cluster, clock.GetUtcNow(), ct)
            : await RemoteAsync(id, async (target, shell) =>
        {
            // Each product looks at its own server.
            return services.GetKeyedService<UpgradeConsole.Web.Runbooks.IProductRuntime>(target.Product) is UpgradeConsole.Web.Runbooks.IProductDiscovery own
                ? await own.DiscoverTargetAsync(target, shell, clock.GetUtcNow(), ct)
                : new DiscoveryRecord(clock.GetUtcNow(), null, $"The product '{target.Product}' cannot look at its server.");
        }, error => new DiscoveryRecord(clock.GetUtcNow(), null, error), ct);

        await SaveAsync(id, t => t.LastDiscoveryJson = JsonSerializer.Serialize(record, JsonSerializerOptions.Web), ct);
        await audit.RecordAsync(actor, "target.discover", id, null,
            new { InstalledVersion = record.Installed, record.Result?.AliveVersion, record.Result?.Python, record.Error }, ct);
        return record;
    }

    public static FractalLocation Location(Target target) => new(target.WorkingDirectory, target.EnvFileName, target.PythonPath, target.ServerUrl);

    public static ConnectionTestRecord? LastTest(Target target) =>
        target.LastTestJson is null ? null : JsonSerializer.Deserialize<ConnectionTestRecord>(target.LastTestJson, JsonSerializerOptions.Web);

    public static DiscoveryRecord? LastDiscovery(Target target) =>
        target.LastDiscoveryJson is null ? null : JsonSerializer.Deserialize<DiscoveryRecord>(target.LastDiscoveryJson, JsonSerializerOptions.Web);

    /// <summary>
    /// Runs remote work on a target and turns a failure into the plain sentence <paramref name="failed"/> shows.
    /// A host key that no longer matches has already blocked the target (<see cref="TargetConnections"/>).
    /// </summary>
    public async Task<T> RemoteAsync<T>(int id, Func<Target, IRemoteShell, Task<T>> work, Func<string, T> failed, CancellationToken ct)
    {
        var target = await FindAsync(id, ct);
        if (target is null)
        {
            return failed("No such target.");
        }

        try
        {
            var shell = await connections.ShellAsync(target, ct);
            return await work(target, shell);
        }
        catch (Exception ex) when (ex is SshConnectionException or HostKeyNotPinnedException or RemoteCommandException or TimeoutException or InvalidOperationException)
        {
            return failed(ex.Message);
        }
    }

    private async Task SaveAsync(int id, Action<Target> change, CancellationToken ct)
    {
        var target = await db.Set<Target>().FirstAsync(t => t.Id == id, ct);
        change(target);
        await db.SaveChangesAsync(ct);
    }

    private List<string> Validate(TargetForm form)
    {
        var results = new List<ValidationResult>();
        var product = products.Products.FirstOrDefault(p => p.Id == form.Product);
        if (product is null)
        {
            results.Add(new ValidationResult("Unknown product.", [nameof(TargetForm.Product)]));
        }
        else if (!product.TargetFields.Rehearses && form.RequirePassingRehearsalWithinDays is not null)
        {
            // Its preflight has no rehearsal to check: kept, the setting would promise what nothing enforces.
            results.Add(new ValidationResult(
                $"{product.Title} runbooks do not rehearse, so a target of this product cannot require a passing rehearsal: leave that setting empty.",
                [nameof(TargetForm.RequirePassingRehearsalWithinDays)]));
        }

        Validator.TryValidateObject(form, new ValidationContext(form), results, validateAllProperties: true);
        return results.Select(r => r.ErrorMessage ?? "Invalid value.").Distinct().ToList();
    }

    /// <summary>Copies the form onto the entity; returns a message if the pasted key is unusable.</summary>
    private async Task<string?> ApplyAsync(Target target, TargetForm form, CancellationToken ct)
    {
        var passphrase = string.IsNullOrEmpty(form.KeyPassphrase) ? null : form.KeyPassphrase;
        if (!string.IsNullOrWhiteSpace(form.PrivateKey))
        {
            try
            {
                // Parsed in memory (and decrypted with the passphrase): a key that cannot be used is refused now.
                target.PrivateKeyFingerprint = SshKeys.Fingerprint(SshKeys.FromText(SshKeys.Normalize(form.PrivateKey), passphrase, "pasted private key"));
            }
            catch (SshConnectionException ex)
            {
                return ex.Message;
            }

            target.ProtectedPrivateKey = connections.ProtectKey(form.PrivateKey);
            target.ProtectedKeyPassphrase = passphrase is null ? null : connections.Protect(passphrase);
        }
        else if (passphrase is not null)
        {
            target.ProtectedKeyPassphrase = connections.Protect(passphrase);
        }

        if (form.AuthMethod == TargetAuthMethod.Agent)
        {
            target.ProtectedKeyPassphrase = null;
        }

        if (form.AuthMethod != TargetAuthMethod.StoredKey)
        {
            target.ProtectedPrivateKey = null;
            target.PrivateKeyFingerprint = null;
        }

        var transport = form.Transport ?? (target.Id != 0 ? target.Transport : form.AuthMethod == TargetAuthMethod.Agent ? SshTransport.OpenSsh : SshTransport.SshNet);
        if (transport == SshTransport.SshNet && form.AuthMethod == TargetAuthMethod.Agent)
        {
            return "The dashboard user's ssh-agent works only with the System OpenSSH client: choose that transport, or store a key.";
        }

        if (transport == SshTransport.OpenSsh && form.AuthMethod == TargetAuthMethod.StoredKey)
        {
            return OpenSshStoredKeyRefusal;
        }

        if (transport == SshTransport.OpenSsh && (!string.IsNullOrWhiteSpace(form.HostCertificateAuthority) || !string.IsNullOrWhiteSpace(form.UserCertificate)))
        {
            return "A host CA and a user certificate set here are used by SSH.NET; with the System OpenSSH client put them in its known_hosts (@cert-authority) and ssh configuration instead.";
        }

        target.Transport = transport;
        target.Name = form.Name.Trim();
        target.Product = form.Product;
        target.Host = form.Host.Trim();
        target.Port = form.Port;
        target.SshUser = form.SshUser.Trim();
        target.AuthMethod = form.AuthMethod;
        target.KeyFilePath = form.AuthMethod == TargetAuthMethod.KeyFile ? form.KeyFilePath?.Trim() : null;
        target.JumpHost = string.IsNullOrWhiteSpace(form.JumpHost) ? null : JumpHostText(form.JumpHost.Trim());
        target.WorkingDirectory = form.WorkingDirectory.Trim();
        target.EnvFileName = form.EnvFileName.Trim();
        target.PythonPath = string.IsNullOrWhiteSpace(form.PythonPath) ? null : form.PythonPath.Trim();
        target.ServerUrl = form.ServerUrl.Trim();
        target.ServiceUser = string.IsNullOrWhiteSpace(form.ServiceUser) ? null : form.ServiceUser.Trim();
        target.StopCommand = form.StopCommand.Trim();
        target.StartCommand = form.StartCommand.Trim();
        target.StatusCommand = form.StatusCommand.Trim();
        target.RunsDirectory = form.RunsDirectory.Trim();
        target.BackupDirectory = form.BackupDirectory.Trim();
        target.PipOptions = string.IsNullOrWhiteSpace(form.PipOptions) ? null : form.PipOptions.Trim();
        target.RequireApproval = form.RequireApproval;
        target.RequirePassingRehearsalWithin = form.RequirePassingRehearsalWithinDays is { } days ? TimeSpan.FromDays(days) : null;
        target.MaintenanceWindows = Core.Scheduling.MaintenanceWindows.TryParse(form.MaintenanceWindows, form.TimeZone, out var windows, out _) && !windows.Unrestricted ? windows.Text : null;
        target.TimeZone = string.IsNullOrWhiteSpace(form.TimeZone) ? null : form.TimeZone.Trim();
        target.HostCertificateAuthority = string.IsNullOrWhiteSpace(form.HostCertificateAuthority) ? null : form.HostCertificateAuthority.Trim();
        target.UserCertificate = string.IsNullOrWhiteSpace(form.UserCertificate) ? null : form.UserCertificate.Trim();
        return null;
    }

    private static string JumpHostText(string text) => JumpHost.TryParse(text, out var j) ? j!.ToString() : text;

    private static void ClearPin(Target target, bool jump)
    {
        if (jump)
        {
            (target.JumpPinnedKeyType, target.JumpPinnedKey, target.JumpPinnedFingerprint) = (null, null, null);
            return;
        }

        (target.PinnedKeyType, target.PinnedKey, target.PinnedFingerprint) = (null, null, null);
        target.HostKeyState = HostKeyState.Unpinned;
    }

    /// <summary>The audit view of a target: settings, never the key.</summary>
    private static object Describe(Target t) => new
    {
        t.Name,
        t.Product,
        t.Host,
        t.Port,
        t.SshUser,
        AuthMethod = t.AuthMethod.ToString(),
        Transport = t.Transport.ToString(),
        HasKeyPassphrase = t.ProtectedKeyPassphrase is not null,
        t.PrivateKeyFingerprint,
        t.KeyFilePath,
        t.JumpHost,
        t.WorkingDirectory,
        t.EnvFileName,
        t.PythonPath,
        t.ServerUrl,
        t.ServiceUser,
        t.StopCommand,
        t.StartCommand,
        t.StatusCommand,
        t.RunsDirectory,
        t.BackupDirectory,
        t.PipOptions,
        t.RequireApproval,
        t.RequirePassingRehearsalWithin,
        t.MaintenanceWindows,
        t.TimeZone,
        t.HostCertificateAuthority,
        HasUserCertificate = t.UserCertificate is not null,
    };
}
