using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A fleet of N distinct "hosts" on 127.0.0.1 for fleet execution: real OpenSSH daemons (Debian's openssh-server),
/// each listening on <c>portsPerDaemon</c> ports (at most 16); every port is one host with its own home directory (sshd's
/// <c>Match LocalPort</c> + <c>SetEnv HOME=…</c>), so each host has its own step directories, and its name in
/// <c>UC_FLEET_HOST</c>. Throwaway host keys (one per daemon) and one client key; as root the hosts log in as the
/// unprivileged <see cref="SshServer.TestUser"/>. With <c>switchable</c> each host sits behind a relay of its own
/// that can be taken down and brought back on the same port, so a test can make one host unreachable. The
/// daemons are stopped by <see cref="DisposeAsync"/>, or by a watchdog if the test process dies. Not the
/// Backend.AI cluster double: hosts here are plain accounts, for the executor and its benchmark.
/// </summary>
public sealed class SshFleet : IAsyncDisposable
{
    private readonly string _root;
    private readonly List<Process> _daemons = [];
    private readonly List<string> _configs = [];
    private readonly List<Relay?> _relays = [];

    private SshFleet(string root) => _root = root;

    /// <summary>The most ports one sshd listens on (OpenSSH's MAX_LISTEN_SOCKS): 200 hosts are 13 daemons.</summary>
    public const int MaxPortsPerDaemon = 16;

    /// <summary>One host: its label, the port clients use, the port its sshd listens on, and its home directory.</summary>
    public sealed record Member(string Label, int Port, int SshdPort, string Home, HostKey HostKey);

    public IReadOnlyList<Member> Hosts => _hosts;

    private readonly List<Member> _hosts = [];

    public string User { get; private set; } = "";

    public string ClientKeyPath => Path.Combine(_root, "id_ed25519");

    public string ClientKey => File.ReadAllText(ClientKeyPath);

    /// <summary>known_hosts pinning every host's key under its client port (for parallel-ssh, Ansible, ssh).</summary>
    public string KnownHostsPath => Path.Combine(_root, "known_hosts");

    /// <summary>A directory every host's account may write to (e.g. to count steps running at once).</summary>
    public string Shared => Path.Combine(_root, "shared");

    public string Root => _root;

    public static async Task<SshFleet> StartAsync(int hosts, int portsPerDaemon = 1, bool switchable = false, string labelPrefix = "host")
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(hosts, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(portsPerDaemon, 1);
        // sshd refuses to start with more than 16 listening sockets (MAX_LISTEN_SOCKS in OpenSSH's sshd.c).
        ArgumentOutOfRangeException.ThrowIfGreaterThan(portsPerDaemon, MaxPortsPerDaemon);
        if (!File.Exists("/usr/sbin/sshd"))
        {
            throw new InvalidOperationException("/usr/sbin/sshd not found: run ./scripts/test.sh, which installs openssh-server.");
        }

        var fleet = new SshFleet(Directory.CreateTempSubdirectory("uc-fleet-").FullName);
        try
        {
            await fleet.InitializeAsync(hosts, portsPerDaemon, switchable, labelPrefix);
            return fleet;
        }
        catch
        {
            await fleet.DisposeAsync();
            throw;
        }
    }

    private async Task InitializeAsync(int hosts, int portsPerDaemon, bool switchable, string labelPrefix)
    {
        User = ProcessRunner.IsRoot ? SshServer.TestUser : Environment.UserName;
        if (ProcessRunner.IsRoot)
        {
            await EnsureTestUserAsync();
            Directory.CreateDirectory("/run/sshd");
        }

        const UnixFileMode open = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        File.SetUnixFileMode(_root, open);
        await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "uc-fleet-client", "-f", ClientKeyPath]);
        var authorizedKeys = Path.Combine(_root, "authorized_keys");
        File.Copy(ClientKeyPath + ".pub", authorizedKeys);
        File.SetUnixFileMode(authorizedKeys, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        Directory.CreateDirectory(Shared);
        Directory.CreateDirectory(Path.Combine(_root, "homes"));
        File.SetUnixFileMode(Path.Combine(_root, "homes"), open);

        var used = new HashSet<int>();
        int Port()
        {
            while (true)
            {
                var port = ProcessRunner.FreePort();
                if (used.Add(port))
                {
                    return port;
                }
            }
        }

        var knownHosts = new List<string>();
        var daemons = (hosts + portsPerDaemon - 1) / portsPerDaemon;
        for (var d = 0; d < daemons; d++)
        {
            var hostKeyPath = Path.Combine(_root, $"ssh_host_ed25519_key_{d}");
            await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", $"uc-fleet-host-{d}", "-f", hostKeyPath]);
            var publicKey = (await File.ReadAllTextAsync(hostKeyPath + ".pub")).Trim().Split(' ');
            var hostKey = new HostKey(publicKey[0], publicKey[1]);
            var config = new List<string>
            {
                "ListenAddress 127.0.0.1",
                $"HostKey {hostKeyPath}",
                $"PidFile {Path.Combine(_root, $"sshd_{d}.pid")}",
                $"AuthorizedKeysFile {authorizedKeys}",
                $"AllowUsers {User}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "MaxSessions 64",
                // Every host of a benchmark connects at once: never drop unauthenticated connections for being many.
                "MaxStartups 1000:30:2000",
                "LogLevel ERROR",
            };
            var matches = new List<string>();
            for (var p = 0; p < portsPerDaemon && _hosts.Count < hosts; p++)
            {
                var label = $"{labelPrefix}{(_hosts.Count + 1).ToString(hosts >= 100 ? "000" : "00", CultureInfo.InvariantCulture)}";
                var sshdPort = Port();
                var home = Path.Combine(_root, "homes", label);
                Directory.CreateDirectory(home);
                config.Insert(0, $"Port {sshdPort}");
                matches.Add($"Match LocalPort {sshdPort}");
                matches.Add($"  SetEnv HOME={home} UC_FLEET_HOST={label}");
                Relay? relay = switchable ? new Relay(sshdPort) : null;
                _relays.Add(relay);
                var clientPort = relay?.Port ?? sshdPort;
                _hosts.Add(new Member(label, clientPort, sshdPort, home, hostKey));
                knownHosts.Add(hostKey.KnownHostsLine("127.0.0.1", clientPort));
            }

            var configPath = Path.Combine(_root, $"sshd_config_{d}");
            await File.WriteAllLinesAsync(configPath, [.. config, .. matches]);
            _configs.Add(configPath);
        }

        if (ProcessRunner.IsRoot)
        {
            await ProcessRunner.RunAsync("chown", ["-R", User, Path.Combine(_root, "homes"), Shared]);
        }

        await File.WriteAllLinesAsync(KnownHostsPath, knownHosts);
        ProcessRunner.CleanUpWhenTestProcessExits(string.Join("; ", _configs.Select(c => $"pkill -f {ProcessRunner.ShellQuote(c)}")) + $"; rm -rf {ProcessRunner.ShellQuote(_root)}");
        foreach (var config in _configs)
        {
            _daemons.Add(StartDaemon(config));
        }

        foreach (var host in _hosts)
        {
            await WaitUntilListeningAsync(host.SshdPort);
        }
    }

    /// <summary>An SSH.NET endpoint for host <paramref name="index"/>, its key pinned.</summary>
    public SshNetEndpoint Endpoint(int index) => new()
    {
        Host = "127.0.0.1",
        Port = _hosts[index].Port,
        User = User,
        Keys = [SshKeys.FromText(ClientKey, null)],
        PinnedKey = _hosts[index].HostKey,
    };

    /// <summary>Takes host <paramref name="index"/> off the network: its live connections are reset and new ones refused.</summary>
    public void MakeUnreachable(int index) => (_relays[index] ?? throw new InvalidOperationException("Start the fleet switchable to take a host down.")).Down();

    /// <summary>Brings host <paramref name="index"/> back on the same port.</summary>
    public void MakeReachable(int index) => (_relays[index] ?? throw new InvalidOperationException("Start the fleet switchable to take a host down.")).Up();

    /// <summary>Runs <paramref name="command"/> on host <paramref name="index"/> with the system ssh client (host key checked).</summary>
    public Task<ProcessRunner.Result> RunAsync(int index, string command, bool check = true) =>
        ProcessRunner.RunAsync("ssh", [.. ClientArguments(index), command], check: check);

    public IReadOnlyList<string> ClientArguments(int index) =>
    [
        "-p", _hosts[index].SshdPort.ToString(CultureInfo.InvariantCulture),
        "-i", ClientKeyPath,
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", $"UserKnownHostsFile={Path.Combine(_root, "known_hosts_sshd")}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR",
        $"{User}@127.0.0.1",
    ];

    public async ValueTask DisposeAsync()
    {
        foreach (var relay in _relays)
        {
            if (relay is not null)
            {
                await relay.DisposeAsync();
            }
        }

        foreach (var daemon in _daemons)
        {
            if (!daemon.HasExited)
            {
                daemon.Kill(entireProcessTree: true);
                await daemon.WaitForExitAsync();
            }

            daemon.Dispose();
        }

        // Steps run detached from sshd: a test that stopped while its steps waited (for a "go" file) leaves them
        // running; whatever still runs from this fleet's homes ends with it.
        await ProcessRunner.RunAsync("pkill", ["-f", Path.Combine(_root, "homes") + "/"], check: false);
        Directory.Delete(_root, recursive: true);
    }

    private static Process StartDaemon(string config)
    {
        var start = new ProcessStartInfo("/usr/sbin/sshd") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-D", "-e", "-f", config })
        {
            start.ArgumentList.Add(a);
        }

        var daemon = Process.Start(start) ?? throw new InvalidOperationException("sshd did not start");
        daemon.BeginErrorReadLine();
        daemon.BeginOutputReadLine();
        return daemon;
    }

    private async Task WaitUntilListeningAsync(int port)
    {
        // Direct sshd ports are pinned in their own known_hosts for ClientArguments (the relays' ports are in KnownHostsPath).
        var member = _hosts.First(h => h.SshdPort == port);
        await File.AppendAllTextAsync(Path.Combine(_root, "known_hosts_sshd"), member.HostKey.KnownHostsLine("127.0.0.1", port) + "\n");
        await Listening.WaitAsync("127.0.0.1", port,
            () => _daemons.FirstOrDefault(d => d.HasExited) is { } dead ? $"sshd exited with {dead.ExitCode}" : null, TimeSpan.FromSeconds(30));
    }

    private static async Task EnsureTestUserAsync()
    {
        if ((await ProcessRunner.RunAsync("id", ["-u", SshServer.TestUser], check: false)).ExitCode != 0)
        {
            var added = await ProcessRunner.RunAsync("useradd", ["-m", "-s", "/bin/bash", SshServer.TestUser], check: false);
            // Another test process may have created it meanwhile (exit 9: already exists).
            if (added.ExitCode is not 0 and not 9)
            {
                throw new InvalidOperationException($"useradd {SshServer.TestUser} failed: {added.Combined}");
            }
        }

        // An account with a locked password ('!') is refused by sshd even for key logins without PAM.
        await ProcessRunner.RunAsync("usermod", ["-p", "*", SshServer.TestUser]);
    }

    /// <summary>A relay in front of one host's sshd that can stop listening (refused, as a host that is down) and start again on its port.</summary>
    private sealed class Relay : IAsyncDisposable
    {
        private readonly int _target;
        private readonly List<(Socket Client, Socket Server)> _pairs = [];
        private TcpListener? _listener;
        private CancellationTokenSource? _stop;
        private Task _accepting = Task.CompletedTask;

        public Relay(int target)
        {
            _target = target;
            Port = Listen(0);
        }

        public int Port { get; private set; }

        public void Down()
        {
            _stop?.Cancel();
            _listener?.Stop();
            _listener = null;
            List<(Socket Client, Socket Server)> pairs;
            lock (_pairs)
            {
                pairs = [.. _pairs];
                _pairs.Clear();
            }

            foreach (var (client, server) in pairs)
            {
                Reset(client);
                Reset(server);
            }
        }

        public void Up()
        {
            if (_listener is null)
            {
                Listen(Port);
            }
        }

        public async ValueTask DisposeAsync()
        {
            Down();
            try
            {
                await _accepting;
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // Stopped.
            }
        }

        private int Listen(int port)
        {
            var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Start();
            _listener = listener;
            _stop = new CancellationTokenSource();
            _accepting = AcceptAsync(listener, _stop.Token);
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        private async Task AcceptAsync(TcpListener listener, CancellationToken stop)
        {
            while (!stop.IsCancellationRequested)
            {
                Socket client;
                try
                {
                    client = await listener.AcceptSocketAsync(stop);
                }
                catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }

                var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    await server.ConnectAsync(IPAddress.Loopback, _target, stop);
                }
                catch (Exception ex) when (ex is OperationCanceledException or SocketException)
                {
                    Reset(client);
                    server.Dispose();
                    continue;
                }

                lock (_pairs)
                {
                    _pairs.Add((client, server));
                }

                _ = PumpAsync(client, server);
                _ = PumpAsync(server, client);
            }
        }

        private static async Task PumpAsync(Socket from, Socket to)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                int read;
                while ((read = await from.ReceiveAsync(buffer, SocketFlags.None)) > 0)
                {
                    await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
                }

                to.Shutdown(SocketShutdown.Send);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                Reset(to);
            }
        }

        private static void Reset(Socket socket)
        {
            try
            {
                socket.LingerState = new LingerOption(true, 0);
                socket.Close();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // Gone already.
            }
        }
    }
}
