using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>A per-test ControlMaster directory and engine against the real sshd; closes the master afterwards.</summary>
public sealed class RemoteSession : IAsyncDisposable
{
    private readonly string _controlDirectory = Directory.CreateTempSubdirectory("uc-cm-").FullName;

    public RemoteSession(SshServer ssh, RemoteEngineOptions? options = null, string? knownHosts = null)
    {
        Ssh = ssh;
        Shell = new OpenSshShell(ssh.Endpoint(_controlDirectory, knownHosts));
        Engine = new RemoteStepEngine(Shell, options);
        RunId = "t" + Guid.NewGuid().ToString("N")[..12];
    }

    public SshServer Ssh { get; }

    public OpenSshShell Shell { get; }

    public RemoteStepEngine Engine { get; }

    /// <summary>A run id of this test's own, so its step directories never collide with another test's.</summary>
    public string RunId { get; }

    public string ControlPath => Shell.Endpoint.ControlPath;

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
        await ProcessRunner.RunAsync("ssh", ["-o", $"ControlPath={ControlPath}", "-O", "exit", "x"], check: false);
        await Ssh.RunAsync($"rm -rf ~/.upgradeconsole-tests/runs/{RunId}", check: false);
        Directory.Delete(_controlDirectory, recursive: true);
    }
}
