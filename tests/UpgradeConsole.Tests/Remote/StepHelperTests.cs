using System.Globalization;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Remote;

/// <summary>
/// The step helper (one python3 per connection that starts and follows steps): a step through it runs as one through
/// the shell would, and whatever happens to the helper, a step runs once and its lines arrive once. The contract suite
/// covers everything else through the helper on both transports.
/// </summary>
public sealed class StepHelperTests(SshServer ssh) : IAsyncLifetime
{
    /// <summary>Prints the pid and name of the process that started the step's runner (the helper, or the channel's shell).</summary>
    private const string PrintStarter = """starter=$(ps -o ppid= -p "$PPID" | tr -d ' '); echo "starter $starter $(ps -o comm= -p "$starter")" """;

    private RemoteSession _remote = default!;

    public ValueTask InitializeAsync()
    {
        _remote = new RemoteSession(ssh, transport: UpgradeConsole.Web.Targets.SshTransport.SshNet);
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync() => _remote.DisposeAsync();

    [Fact]
    public async Task AStep_IsStartedByTheHelper_InTheEnvironmentTheShellWouldGiveIt()
    {
        // What a script can see of how it was started: umask, signal dispositions (python ignores SIGPIPE, which a
        // child would keep), locale (python coerces a C locale), the environment, the working directory.
        const string probe = """
            echo "umask $(umask)"
            yes | head -c 1 > /dev/null; echo "pipe ${PIPESTATUS[0]}"
            echo "cwd $PWD"
            env | grep -v -E '^(SSH_CLIENT|SSH_CONNECTION|_|OLDPWD)=' | LC_ALL=C sort | sed 's/^/env /'
            """;
        var (helped, helpedStatus) = await _remote.RunAsync(_remote.NewStep("env-helper", PrintStarter + "\n" + probe));
        await using var plain = new RemoteSession(ssh, new RemoteEngineOptions { UseStepHelper = false }, UpgradeConsole.Web.Targets.SshTransport.SshNet);
        var (shelled, shelledStatus) = await plain.RunAsync(plain.NewStep("env-shell", PrintStarter + "\n" + probe));

        Assert.Equal(0, helpedStatus.ExitCode);
        Assert.Equal(0, shelledStatus.ExitCode);
        Assert.EndsWith(" python3", helped[0].Text, StringComparison.Ordinal);
        Assert.DoesNotContain("python", shelled[0].Text, StringComparison.Ordinal);
        Assert.Contains("pipe 141", helped.Select(l => l.Text));
        Assert.Contains("umask 0077", helped.Select(l => l.Text));
        Assert.Equal(shelled.Skip(1).Select(l => l.Text), helped.Skip(1).Select(l => l.Text));
    }

    [Fact]
    public async Task TheHelperKilledMidStep_TheStepCarriesOn_AndEveryLineArrivesOnce()
    {
        var texts = new List<string>();
        var status = await _remote.Engine.RunAsync(_remote.NewStep("helper-killed", PrintStarter + """

            for i in $(seq 1 300); do echo "line $i"; sleep 0.005; done
            exit 3
            """), async line =>
        {
            texts.Add(line.Text);
            if (texts.Count == 1)
            {
                var fields = line.Text.Split(' ');
                Assert.Equal("python3", fields[2]);
                await ssh.RunAsync($"kill -KILL {int.Parse(fields[1], CultureInfo.InvariantCulture)}");
            }
        }, TestContext.Current.CancellationToken);

        Assert.Equal(RemoteStepState.Exited, status.State);
        Assert.Equal(3, status.ExitCode);
        Assert.Equal(Enumerable.Range(1, 300).Select(i => $"line {i}"), texts.Skip(1));

        // The next step gets a new helper.
        var (next, nextStatus) = await _remote.RunAsync(_remote.NewStep("after-kill", PrintStarter));
        Assert.Equal(0, nextStatus.ExitCode);
        Assert.EndsWith(" python3", next[0].Text, StringComparison.Ordinal);
        Assert.NotEqual(texts[0], next[0].Text);
    }

    [Fact]
    public async Task AHelperThatCannotTakeTheRequest_LeavesTheStepToTheShell_WhichRunsItOnce()
    {
        var shell = new AlteredShell(_remote.Shell, breakInput: true);
        var engine = new RemoteStepEngine(shell);
        var step = _remote.NewStep("broken-helper", PrintStarter + "\necho ran >> \"$HOME/.upgradeconsole-tests/runs/" + _remote.RunId + "/broken-helper.count\"");
        var lines = new List<string>();
        var status = await engine.RunAsync(step, line =>
        {
            lines.Add(line.Text);
            return ValueTask.CompletedTask;
        }, TestContext.Current.CancellationToken);

        Assert.Equal(0, status.ExitCode);
        Assert.Equal(1, shell.Sessions);
        Assert.DoesNotContain("python", lines.Single(), StringComparison.Ordinal);
        var count = await ssh.RunAsync($"cat ~/.upgradeconsole-tests/runs/{_remote.RunId}/broken-helper.count");
        Assert.Equal("ran", count.StandardOutput.Trim());
    }

    [Fact]
    public async Task ATargetWithoutPython3_RunsEveryStepThroughTheShell_AndAsksOnce()
    {
        var shell = new AlteredShell(_remote.Shell, hidePython: true);
        var engine = new RemoteStepEngine(shell);
        foreach (var name in new[] { "no-python-1", "no-python-2" })
        {
            var lines = new List<string>();
            var status = await engine.RunAsync(_remote.NewStep(name, PrintStarter + "\nexit 7"), line =>
            {
                lines.Add(line.Text);
                return ValueTask.CompletedTask;
            }, TestContext.Current.CancellationToken);
            Assert.Equal(7, status.ExitCode);
            Assert.DoesNotContain("python", lines.Single(), StringComparison.Ordinal);
        }

        Assert.Equal(1, shell.Sessions);
    }

    [Fact]
    public async Task TwentyStepsAtOnceOnOneConnection_EachGetItsOwnLinesAndCode_FromOneHelper()
    {
        var results = await Task.WhenAll(Enumerable.Range(1, 20).Select(i =>
            _remote.RunAsync(_remote.NewStep($"many-{i}", PrintStarter + $"\nfor n in $(seq 1 200); do echo \"step {i} $n\"; done\nexit {i}"))));

        for (var i = 1; i <= 20; i++)
        {
            var (lines, status) = results[i - 1];
            Assert.Equal(i, status.ExitCode);
            Assert.Equal(Enumerable.Range(1, 200).Select(n => $"step {i} {n}"), lines.Skip(1).Select(l => l.Text));
        }

        Assert.Single(results.Select(r => r.Lines[0].Text).Distinct());
        Assert.EndsWith(" python3", results[0].Lines[0].Text, StringComparison.Ordinal);
    }

    /// <summary>The fixture's shell with a fault put into its sessions: no python3 on the target, or an input that breaks.</summary>
    private sealed class AlteredShell(IRemoteShell inner, bool hidePython = false, bool breakInput = false) : IRemoteShell
    {
        private int _sessions;

        public int Sessions => _sessions;

        public string Destination => inner.Destination;

        public object? Connection { get; } = new();

        public Task<RemoteResult> RunAsync(string script, CancellationToken cancellationToken, TimeSpan? timeout = null) => inner.RunAsync(script, cancellationToken, timeout);

        public Task<IRemoteProcess> StartAsync(string script, CancellationToken cancellationToken) => inner.StartAsync(script, cancellationToken);

        public Task<IPortForward> ForwardAsync(string remoteHost, int remotePort, CancellationToken cancellationToken) => inner.ForwardAsync(remoteHost, remotePort, cancellationToken);

        public async Task<IRemoteSession?> OpenSessionAsync(string script, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _sessions);
            var session = await inner.OpenSessionAsync(hidePython ? script.Replace("command -v python3 ", "command -v python3-not-installed ", StringComparison.Ordinal) : script, cancellationToken);
            return session is not null && breakInput ? new BrokenInput(session) : session;
        }
    }

    private sealed class BrokenInput(IRemoteSession inner) : IRemoteSession
    {
        public Stream Input { get; } = new BrokenStream();

        public Stream Output => inner.Output;

        public Task<RemoteResult> WaitAsync(CancellationToken cancellationToken) => inner.WaitAsync(cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    private sealed class BrokenStream : MemoryStream
    {
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromException(new IOException("Broken pipe"));
    }
}
