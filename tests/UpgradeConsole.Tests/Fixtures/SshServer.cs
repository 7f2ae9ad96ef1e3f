using System.Diagnostics;
using System.Net.Sockets;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A real OpenSSH server (Debian's openssh-server) on a free port of 127.0.0.1, with throwaway host
/// and client keys and a known_hosts file for it. When the tests run as root it logs in a dedicated
/// unprivileged user (<see cref="TestUser"/>), so remote steps do not run as root.
/// </summary>
public sealed class SshServer : IAsyncLifetime
{
    public const string TestUser = "ucssh";

    /// <summary>A second account the test user may become with <c>sudo -n -u</c> (the "service user").</summary>
    public const string ServiceUser = "ucsvc";

    private readonly string _root = Directory.CreateTempSubdirectory("uc-sshd-").FullName;
    private Process? _sshd;

    public string Host { get; } = "127.0.0.1";

    public int Port { get; private set; }

    /// <summary>The account the client key logs in as.</summary>
    public string User { get; private set; } = "";

    /// <summary>Private key (OpenSSH format) that the server accepts for <see cref="User"/>.</summary>
    public string ClientKeyPath => Path.Combine(_root, "id_ed25519");

    public string ClientKey => File.ReadAllText(ClientKeyPath);

    /// <summary>A known_hosts file naming this server's host key.</summary>
    public string KnownHostsPath => Path.Combine(_root, "known_hosts");

    /// <summary>The host public key line ("ssh-ed25519 AAAA…").</summary>
    public string HostPublicKey { get; private set; } = "";

    public string HostKeyPath => Path.Combine(_root, "ssh_host_ed25519_key");

    public async ValueTask InitializeAsync()
    {
        if (!File.Exists("/usr/sbin/sshd"))
        {
            throw new InvalidOperationException("/usr/sbin/sshd not found: run ./scripts/test.sh, which installs openssh-server.");
        }

        User = ProcessRunner.IsRoot ? TestUser : Environment.UserName;
        if (ProcessRunner.IsRoot)
        {
            await EnsureTestUserAsync();
            // sshd's privilege separation directory.
            Directory.CreateDirectory("/run/sshd");
        }

        await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "uc-test-host", "-f", HostKeyPath]);
        await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "uc-test-client", "-f", ClientKeyPath]);
        var authorizedKeys = Path.Combine(_root, "authorized_keys");
        File.Copy(ClientKeyPath + ".pub", authorizedKeys);
        File.SetUnixFileMode(_root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        File.SetUnixFileMode(authorizedKeys, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        ProcessRunner.CleanUpWhenTestProcessExits($"pkill -f {ProcessRunner.ShellQuote(Path.Combine(_root, "sshd_config"))}; rm -rf {ProcessRunner.ShellQuote(_root)}");

        // A free port can be taken by someone else's outgoing connection before sshd binds it: then another port.
        HostPublicKey = (await File.ReadAllTextAsync(HostKeyPath + ".pub")).Trim();
        for (var attempt = 1; ; attempt++)
        {
            Port = ProcessRunner.FreePort();
            await File.WriteAllTextAsync(KnownHostsPath, $"[{Host}]:{Port} {HostPublicKey}\n");
            var config = Path.Combine(_root, "sshd_config");
            await File.WriteAllLinesAsync(config,
            [
                $"Port {Port}",
                $"ListenAddress {Host}",
                $"HostKey {HostKeyPath}",
                $"PidFile {Path.Combine(_root, "sshd.pid")}",
                $"AuthorizedKeysFile {authorizedKeys}",
                $"AllowUsers {User}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "MaxSessions 64",
                "MaxStartups 64:30:128",
                "AcceptEnv LANG LC_*",
                "Subsystem sftp internal-sftp",
                "LogLevel VERBOSE",
            ]);

            _config = config;
            StartDaemon();
            try
            {
                await WaitUntilListeningAsync();
                break;
            }
            catch (InvalidOperationException ex) when (attempt < 5 && ex.Message.Contains("Address already in use", StringComparison.Ordinal))
            {
                // sshd exited without listening; the next attempt writes the config again with a new port.
            }
        }
    }

    private void StartDaemon()
    {
        var start = new ProcessStartInfo("/usr/sbin/sshd")
        {
            UseShellExecute = false,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        foreach (var a in new[] { "-D", "-e", "-f", _config })
        {
            start.ArgumentList.Add(a);
        }

        _sshd = Process.Start(start) ?? throw new InvalidOperationException("sshd did not start");
        _sshd.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (_log) { _log.Add(e.Data); } } };
        _sshd.BeginErrorReadLine();
        _sshd.BeginOutputReadLine();
    }

    private readonly List<string> _log = [];
    private string _config = "";

    /// <summary>
    /// Restarts sshd on the same port with a brand-new host key (or <paramref name="privateKey"/>, an OpenSSH private
    /// key of the test's own): to the dashboard it looks exactly like a reinstalled server, or a man-in-the-middle.
    /// </summary>
    public async Task RotateHostKeyAsync(string? privateKey = null)
    {
        _sshd!.Kill(entireProcessTree: true);
        await _sshd.WaitForExitAsync();
        File.Delete(HostKeyPath);
        File.Delete(HostKeyPath + ".pub");
        if (privateKey is null)
        {
            await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "uc-test-host-rotated", "-f", HostKeyPath]);
        }
        else
        {
            await File.WriteAllTextAsync(HostKeyPath, privateKey);
            File.SetUnixFileMode(HostKeyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var publicKey = await ProcessRunner.RunAsync("ssh-keygen", ["-y", "-f", HostKeyPath]);
            await File.WriteAllTextAsync(HostKeyPath + ".pub", publicKey.StandardOutput);
        }

        HostPublicKey = (await File.ReadAllTextAsync(HostKeyPath + ".pub")).Trim();
        await File.WriteAllTextAsync(KnownHostsPath, $"[{Host}]:{Port} {HostPublicKey}\n");
        StartDaemon();
        await WaitUntilListeningAsync();
    }

    /// <summary>A directory of this server's own (keys, config), for files a test adds to its configuration.</summary>
    public string Root => _root;

    /// <summary>
    /// Restarts sshd on the same port with its configuration plus <paramref name="lines"/> (replacing those a previous
    /// call added): e.g. a HostCertificate or TrustedUserCAKeys. For a server of a test's own, not the shared one.
    /// </summary>
    public async Task RestartWithAsync(params string[] lines)
    {
        _sshd!.Kill(entireProcessTree: true);
        await _sshd.WaitForExitAsync();
        var kept = (await File.ReadAllLinesAsync(_config)).TakeWhile(l => l != ExtraMarker);
        await File.WriteAllLinesAsync(_config, [.. kept, ExtraMarker, .. lines]);
        StartDaemon();
        await WaitUntilListeningAsync();
    }

    private const string ExtraMarker = "# added by the test";

    /// <summary>Lets another public key (one authorized_keys line) log in as <see cref="User"/>.</summary>
    public async Task AuthorizeAsync(string publicKeyLine)
    {
        await AuthorizedKeysGate.WaitAsync();
        try
        {
            await File.AppendAllTextAsync(Path.Combine(_root, "authorized_keys"), publicKeyLine.Trim() + "\n");
        }
        finally
        {
            AuthorizedKeysGate.Release();
        }
    }

    private static readonly SemaphoreSlim AuthorizedKeysGate = new(1, 1);

    /// <summary>Makes a throwaway key pair (ssh-keygen) and returns its private key text and public key line.</summary>
    public static async Task<(string PrivateKey, string PublicKey)> NewKeyAsync(string type, int? bits = null, string passphrase = "")
    {
        var dir = Directory.CreateTempSubdirectory("uc-key-");
        try
        {
            var path = Path.Combine(dir.FullName, "id");
            string[] size = bits is { } b ? ["-b", b.ToString(System.Globalization.CultureInfo.InvariantCulture)] : [];
            await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", type, .. size, "-N", passphrase, "-C", "uc-test-" + type, "-f", path]);
            return (await File.ReadAllTextAsync(path), (await File.ReadAllTextAsync(path + ".pub")).Trim());
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>The host key's SHA256 fingerprint as ssh-keygen prints it.</summary>
    public async Task<string> HostKeyFingerprintAsync()
    {
        var result = await ProcessRunner.RunAsync("ssh-keygen", ["-l", "-E", "sha256", "-f", HostKeyPath + ".pub"]);
        return result.StandardOutput.Split(' ')[1];
    }

    /// <summary>What sshd logged so far (for failure messages).</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return string.Join('\n', _log);
            }
        }
    }

    /// <summary>Arguments for the system ssh client that reach this server with host-key checking on.</summary>
    public IReadOnlyList<string> ClientArguments(string? knownHosts = null) =>
    [
        "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "-i", ClientKeyPath,
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", $"UserKnownHostsFile={knownHosts ?? KnownHostsPath}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR",
        $"{User}@{Host}",
    ];

    /// <summary>
    /// An endpoint for the engine: the fixture's client key, its known_hosts, and a ControlMaster
    /// socket in <paramref name="controlDirectory"/> (kept short: unix socket paths are limited).
    /// </summary>
    public UpgradeConsole.Core.Remote.SshEndpoint Endpoint(string controlDirectory, string? knownHosts = null) => new()
    {
        Host = Host,
        Port = Port,
        User = User,
        Identity = new UpgradeConsole.Core.Remote.SshIdentity.KeyFile(ClientKeyPath),
        KnownHostsFile = knownHosts ?? KnownHostsPath,
        HostKeyAlgorithm = "ssh-ed25519",
        ControlPath = Path.Combine(controlDirectory, "cm"),
        ControlPersist = TimeSpan.FromSeconds(60),
    };

    /// <summary>Runs a command on the server through the system ssh client.</summary>
    public Task<ProcessRunner.Result> RunAsync(string command, bool check = true, string? knownHosts = null) =>
        ProcessRunner.RunAsync("ssh", [.. ClientArguments(knownHosts), command], check: check);

    public ValueTask DisposeAsync()
    {
        if (_sshd is { HasExited: false })
        {
            _sshd.Kill(entireProcessTree: true);
            _sshd.WaitForExit(5000);
        }

        _sshd?.Dispose();
        Directory.Delete(_root, recursive: true);
        return ValueTask.CompletedTask;
    }

    private static async Task EnsureTestUserAsync()
    {
        var exists = await ProcessRunner.RunAsync("id", ["-u", TestUser], check: false);
        if (exists.ExitCode != 0)
        {
            var added = await ProcessRunner.RunAsync("useradd", ["-m", "-s", "/bin/bash", TestUser], check: false);
            // Another test process may have created it meanwhile (exit 9: already exists).
            if (added.ExitCode is not 0 and not 9)
            {
                throw new InvalidOperationException($"useradd {TestUser} failed: {added.Combined}");
            }
        }

        // An account with a locked password ('!') is refused by sshd even for key logins without PAM.
        await ProcessRunner.RunAsync("usermod", ["-p", "*", TestUser]);

        // The service user, and the sudo rule a facility would write: the SSH user may run anything as it, without a password.
        if ((await ProcessRunner.RunAsync("id", ["-u", ServiceUser], check: false)).ExitCode != 0)
        {
            var added = await ProcessRunner.RunAsync("useradd", ["-m", "-s", "/bin/bash", ServiceUser], check: false);
            if (added.ExitCode is not 0 and not 9)
            {
                throw new InvalidOperationException($"useradd {ServiceUser} failed: {added.Combined}");
            }
        }

        if (Directory.Exists("/etc/sudoers.d"))
        {
            var rule = "/etc/sudoers.d/upgradeconsole-tests";
            // A temporary file of this server's own: several servers (a cluster's hosts) start at once.
            var temp = $"{rule}.{Guid.NewGuid():N}.tmp";
            await File.WriteAllTextAsync(temp, $"{TestUser} ALL=({ServiceUser}) NOPASSWD: ALL\n");
            File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.GroupRead);
            File.Move(temp, rule, overwrite: true);
        }
    }

    private async Task WaitUntilListeningAsync()
    {
        try
        {
            await Listening.WaitAsync(Host, Port, () => _sshd!.HasExited ? $"sshd exited with {_sshd.ExitCode}:\n{Log}" : null, TimeSpan.FromSeconds(20));
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"sshd did not listen on {Port}:\n{Log}");
        }
    }
}
