using System.Globalization;
using Microsoft.AspNetCore.DataProtection;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Hosting;

namespace UpgradeConsole.Web.Targets;

/// <summary>
/// Builds the SSH connection of a target: a known_hosts file holding only its pinned key(s),
/// its ControlMaster socket, and its identity. Refuses outright when no key is pinned or a
/// mismatch was seen: nothing connects until an Admin has pinned a key.
/// </summary>
public sealed class TargetConnections(DataDirectory data, SshAgentPool agents, IDataProtectionProvider protection)
{
    private readonly IDataProtector _keys = protection.CreateProtector("UpgradeConsole.Targets.PrivateKey.v1");

    public string Protect(string privateKey) => _keys.Protect(SshAgentPool.NormalizeKey(privateKey));

    public async Task<OpenSshShell> ShellAsync(Target target, CancellationToken ct)
    {
        switch (target.HostKeyState)
        {
            case HostKeyState.Unpinned:
                throw new HostKeyNotPinnedException($"No host key is pinned for {target.Name}: an Admin must check and pin one before anything connects.");
            case HostKeyState.Mismatch:
                throw new HostKeyMismatchException(
                    $"{target.Name} presented a host key other than the pinned one ({target.PinnedFingerprint}). This may be a man-in-the-middle attack: " +
                    "every action on this target is blocked until an Admin checks the new key and pins it again.");
            default:
                break;
        }

        if (target.JumpHost is not null && target.JumpPinnedKey is null)
        {
            throw new HostKeyNotPinnedException($"The jump host of {target.Name} has no pinned key: pin it first.");
        }

        var dir = TargetDirectory(target.Id);
        var knownHosts = Path.Combine(dir, "known_hosts");
        var jump = JumpHost.TryParse(target.JumpHost, out var parsed) ? parsed! with { HostKeyAlgorithm = target.JumpPinnedKeyType } : null;
        var lines = new List<string> { new HostKey(target.PinnedKeyType!, target.PinnedKey!).KnownHostsLine(target.Host, target.Port) };
        if (jump is not null)
        {
            lines.Add(new HostKey(target.JumpPinnedKeyType!, target.JumpPinnedKey!).KnownHostsLine(jump.Host, jump.Port));
        }

        // Derived from the database on every use: the database is the one truth, shared by all nodes.
        var temp = knownHosts + ".tmp";
        await File.WriteAllLinesAsync(temp, lines, ct);
        File.Move(temp, knownHosts, overwrite: true);

        return new OpenSshShell(new SshEndpoint
        {
            Host = target.Host,
            Port = target.Port,
            User = target.SshUser,
            Identity = await IdentityAsync(target, ct),
            KnownHostsFile = knownHosts,
            HostKeyAlgorithm = target.PinnedKeyType,
            ControlPath = Path.Combine(dir, "cm"),
            Jump = jump,
        });
    }

    /// <summary>A shell on the target's jump host alone (to scan the target's key from there).</summary>
    public async Task<OpenSshShell> JumpShellAsync(Target target, CancellationToken ct)
    {
        if (!JumpHost.TryParse(target.JumpHost, out var jump) || target.JumpPinnedKey is null)
        {
            throw new HostKeyNotPinnedException("Pin the jump host's key first.");
        }

        var dir = TargetDirectory(target.Id);
        var knownHosts = Path.Combine(dir, "known_hosts.jump");
        await File.WriteAllTextAsync(knownHosts, new HostKey(target.JumpPinnedKeyType!, target.JumpPinnedKey).KnownHostsLine(jump!.Host, jump.Port) + "\n", ct);
        return new OpenSshShell(new SshEndpoint
        {
            Host = jump.Host,
            Port = jump.Port,
            User = jump.User,
            Identity = await IdentityAsync(target, ct),
            KnownHostsFile = knownHosts,
            HostKeyAlgorithm = target.JumpPinnedKeyType,
            ControlPath = Path.Combine(dir, "cmj"),
        });
    }

    /// <summary>
    /// Forwards a local Unix socket, through the target's ControlMaster, to the PostgreSQL the
    /// target's env file names (a TCP host, or a socket directory when POSTGRES_HOST starts with '/').
    /// Returns the local directory to give Npgsql as Host. Re-forwards when the socket went stale.
    /// </summary>
    public async Task<string> ForwardPostgresAsync(Target target, OpenSshShell shell, string postgresHost, int postgresPort, CancellationToken ct)
    {
        var remote = postgresHost.StartsWith('/')
            ? $"{postgresHost.TrimEnd('/')}/.s.PGSQL.{postgresPort.ToString(CultureInfo.InvariantCulture)}"
            : $"{postgresHost}:{postgresPort.ToString(CultureInfo.InvariantCulture)}";
        var key = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(remote)))[..8];
        var dir = Path.Combine(TargetDirectory(target.Id), "pg-" + key);
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var socket = Path.Combine(dir, $".s.PGSQL.{postgresPort.ToString(CultureInfo.InvariantCulture)}");
        if (File.Exists(socket) && await AcceptsAsync(socket, ct))
        {
            return dir;
        }

        File.Delete(socket);
        // The master must be up before it can take a forwarding request.
        await shell.RunAsync("true", ct, TimeSpan.FromSeconds(60));
        var start = new System.Diagnostics.ProcessStartInfo("ssh") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-o", "ControlPath=" + shell.Endpoint.ControlPath, "-O", "forward", "-L", $"{socket}:{remote}", "unused" })
        {
            start.ArgumentList.Add(a);
        }

        using var process = System.Diagnostics.Process.Start(start) ?? throw new InvalidOperationException("Could not start ssh.");
        var error = await process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        if (process.ExitCode != 0)
        {
            throw new SshConnectionException($"Could not forward to the target's PostgreSQL ({remote}): {error.Trim()}", error);
        }

        return dir;
    }

    private static async Task<bool> AcceptsAsync(string socket, CancellationToken ct)
    {
        try
        {
            using var probe = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            await probe.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socket), ct);
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    /// <summary>Closes the target's ControlMaster connections (after a re-pin, a key change or an edit).</summary>
    public async Task CloseAsync(int targetId)
    {
        foreach (var socket in new[] { "cm", "cmj" })
        {
            var path = Path.Combine(TargetDirectory(targetId), socket);
            if (!File.Exists(path))
            {
                continue;
            }

            var start = new System.Diagnostics.ProcessStartInfo("ssh") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "-o", "ControlPath=" + path, "-O", "exit", "unused" })
            {
                start.ArgumentList.Add(a);
            }

            using var process = System.Diagnostics.Process.Start(start);
            if (process is not null)
            {
                await process.WaitForExitAsync();
            }

            File.Delete(path);
        }
    }

    /// <summary>Removes everything the dashboard kept on disk for a deleted target.</summary>
    public async Task ForgetAsync(int targetId)
    {
        await CloseAsync(targetId);
        agents.Forget(targetId);
        var dir = TargetDirectory(targetId);
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private async Task<SshIdentity> IdentityAsync(Target target, CancellationToken ct) => target.AuthMethod switch
    {
        TargetAuthMethod.StoredKey when target.ProtectedPrivateKey is not null =>
            new SshIdentity.Agent(await agents.SocketForAsync(target.Id, _keys.Unprotect(target.ProtectedPrivateKey), target.PrivateKeyFingerprint ?? "", ct)),
        TargetAuthMethod.StoredKey => throw new InvalidOperationException($"{target.Name} has no stored key; an Admin must paste one."),
        TargetAuthMethod.KeyFile => new SshIdentity.KeyFile(target.KeyFilePath!),
        _ => new SshIdentity.DashboardUser(),
    };

    private string TargetDirectory(int targetId)
    {
        var dir = Path.Combine(data.Subdirectory("ssh"), targetId.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return dir;
    }
}
