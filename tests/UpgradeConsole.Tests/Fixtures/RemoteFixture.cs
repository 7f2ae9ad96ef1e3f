using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A shell and engine against the real sshd over either transport, through a <see cref="TcpRelay"/>
/// so a test can cut the link; its own ControlMaster directory (OpenSSH) or connection (SSH.NET),
/// closed afterwards, with the host key pinned as the dashboard pins it.
/// </summary>
public sealed class RemoteSession : IAsyncDisposable
{
    private readonly string _controlDirectory = Directory.CreateTempSubdirectory("uc-cm-").FullName;
    private readonly TcpRelay _relay;
    private readonly SshNetConnection? _connection;

    public RemoteSession(SshServer ssh, RemoteEngineOptions? options = null, SshTransport transport = SshTransport.OpenSsh, HostKey? pinnedKey = null)
    {
        Ssh = ssh;
        Transport = transport;
        _relay = new TcpRelay(ssh.Port);
        PinnedKey = pinnedKey ?? ServerKey(ssh);
        if (transport == SshTransport.SshNet)
        {
            _connection = new SshNetConnection(Endpoint(ssh, _relay.Port, PinnedKey));
            Shell = new SshNetShell(_connection);
        }
        else
        {
            var knownHosts = Path.Combine(_controlDirectory, "known_hosts");
            File.WriteAllText(knownHosts, PinnedKey.KnownHostsLine(ssh.Host, _relay.Port) + "\n");
            Shell = new OpenSshShell(ssh.Endpoint(_controlDirectory, knownHosts) with { Port = _relay.Port, HostKeyAlgorithm = PinnedKey.Type });
        }

        Engine = new RemoteStepEngine(Shell, options);
        RunId = "t" + Guid.NewGuid().ToString("N")[..12];
    }

    public SshServer Ssh { get; }

    public SshTransport Transport { get; }

    public HostKey PinnedKey { get; }

    public IRemoteShell Shell { get; }

    public RemoteStepEngine Engine { get; }

    /// <summary>A run id of this test's own, so its step directories never collide with another test's.</summary>
    public string RunId { get; }

    /// <summary>The sshd's own host key, as the dashboard would pin it.</summary>
    public static HostKey ServerKey(SshServer ssh)
    {
        var parts = ssh.HostPublicKey.Split(' ');
        return new HostKey(parts[0], parts[1]);
    }

    /// <summary>An SSH.NET endpoint for the fixture's server (or a relay in front of it) with its client key.</summary>
    public static SshNetEndpoint Endpoint(SshServer ssh, int port, HostKey pinned) => new()
    {
        Host = ssh.Host,
        Port = port,
        User = ssh.User,
        Keys = [SshKeys.FromText(ssh.ClientKey, null)],
        PinnedKey = pinned,
    };

    /// <summary>Cuts the link under every connection of this session (a reset at the relay), as a network failure would.</summary>
    public int CutLink() => _relay.CutAll();

    public StepLocation Step(string stepId) => new("~/.upgradeconsole-tests/runs", RunId, stepId);

    public RemoteStep NewStep(string stepId, string script, IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null) => new()
    {
        Location = Step(stepId),
        Script = script,
        Environment = environment ?? new Dictionary<string, string>(),
        Timeout = timeout,
    };

    /// <summary>Runs a step to its end and returns its lines and status.</summary>
    public async Task<(List<RemoteLogLine> Lines, RemoteStepStatus Status)> RunAsync(RemoteStep step)
    {
        var lines = new List<RemoteLogLine>();
        var status = await Engine.RunAsync(step, line =>
        {
            lines.Add(line);
            return ValueTask.CompletedTask;
        }, TestContext.Current.CancellationToken);
        return (lines, status);
    }

    public async ValueTask DisposeAsync()
    {
        if (Shell is OpenSshShell openSsh)
        {
            await openSsh.CloseAsync();
        }

        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }

        await _relay.DisposeAsync();
        await Ssh.RunAsync($"rm -rf ~/.upgradeconsole-tests/runs/{RunId}", check: false);
        Directory.Delete(_controlDirectory, recursive: true);
    }
}
