using System.Collections.Concurrent;
using UpgradeConsole.Core.Fleet;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Fleet;

/// <summary>
/// The fleet executor against real sshd hosts on 127.0.0.1 (<see cref="SshFleet"/>), over SSH.NET: rolling batches that
/// stop at a failure, one host retried alone, hosts unreachable before and during their step, the concurrency bound as
/// seen on the hosts themselves, and every host's every line stored once under its prefix.
/// </summary>
public sealed class RunningAStepOnAFleetTests
{
    private static readonly RemoteEngineOptions QuickRetries = new()
    {
        RetryDelays = [TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(200)],
    };

    /// <summary>The run's log as the executor fills it: every line with its host, attempt and number.</summary>
    private sealed class LogStore : IFleetLog
    {
        public ConcurrentQueue<FleetLogLine> Lines { get; } = new();

        /// <summary>Each state change told, with the host's lines of that attempt written when it was told.</summary>
        public ConcurrentQueue<(FleetHostStatus Status, int LinesWritten)> Changes { get; } = new();

        public ValueTask WriteAsync(FleetLogLine line, CancellationToken cancellationToken)
        {
            Lines.Enqueue(line);
            return ValueTask.CompletedTask;
        }

        public ValueTask HostChangedAsync(FleetHostStatus status, CancellationToken cancellationToken)
        {
            Changes.Enqueue((status, Lines.Count(l => l.Host == status.Label && l.Attempt == status.Attempt)));
            return ValueTask.CompletedTask;
        }

        public List<string> Of(string host, int attempt) =>
            [.. Lines.Where(l => l.Host == host && l.Attempt == attempt).OrderBy(l => l.Sequence).Select(l => l.Prefixed)];

        /// <summary>No line twice; each host's attempt numbered 1..n without a gap; each line prefixed with its host.</summary>
        public void AssertEachLineOnce()
        {
            var all = Lines.ToList();
            Assert.Equal(all.Count, all.Select(l => (l.Host, l.Attempt, l.Sequence)).Distinct().Count());
            Assert.Equal(all.Count, all.Select(l => (l.Host, l.Attempt, l.Line.Offset)).Distinct().Count());
            foreach (var group in all.GroupBy(l => (l.Host, l.Attempt)))
            {
                Assert.Equal(Enumerable.Range(1, group.Count()).Select(i => (long)i), group.Select(l => l.Sequence).Order());
                Assert.All(group, l => Assert.StartsWith($"[{l.Host}] ", l.Prefixed, StringComparison.Ordinal));
            }
        }
    }

    private sealed class Rig(SshFleet fleet, List<SshNetConnection> connections) : IAsyncDisposable
    {
        public SshFleet Fleet { get; } = fleet;

        public IReadOnlyList<FleetHost> Hosts { get; } =
            [.. fleet.Hosts.Select((m, i) => new FleetHost(m.Label, new SshNetShell(connections[i])))];

        public LogStore Log { get; } = new();

        public static async Task<Rig> StartAsync(int hosts, int portsPerDaemon = 1, bool switchable = false)
        {
            var fleet = await SshFleet.StartAsync(hosts, portsPerDaemon, switchable);
            return new Rig(fleet, [.. fleet.Hosts.Select((_, i) => new SshNetConnection(fleet.Endpoint(i)))]);
        }

        public FleetExecutor Executor(string script, FleetOptions options, IReadOnlyDictionary<string, string>? environment = null) =>
            new(Hosts, new FleetStep { RunId = "fleet-test", StepId = "step", Script = script, Environment = environment ?? new Dictionary<string, string>() }, Log, options with { Engine = QuickRetries });

        public async ValueTask DisposeAsync()
        {
            foreach (var connection in connections)
            {
                await connection.DisposeAsync();
            }

            await Fleet.DisposeAsync();
        }
    }

    private static readonly string[] FirstBatchGood = ["host01", "host02", "host04", "host05"];

    private static string Labels(IEnumerable<FleetHostStatus> hosts) => string.Join("\n", hosts.Select(h => h.Describe()));

    [Fact]
    public async Task TenHostsInBatchesOfFive_OneFails_TheRolloutStopsAndThatHostRetriedAloneSucceeds()
    {
        await using var rig = await Rig.StartAsync(10, portsPerDaemon: 5);
        const string script = """
            for i in $(seq 1 25); do echo "line $i of $UC_FLEET_HOST"; done
            if [ "$UC_FLEET_HOST" = host03 ] && [ ! -e "$HOME/fixed" ]; then echo "host03 is broken"; exit 3; fi
            echo "done on $UC_FLEET_HOST"
            """;
        using var executor = rig.Executor(script, new FleetOptions { Batch = FleetBatchSize.OfHosts(5) });

        var outcome = await executor.RunAsync(TestContext.Current.CancellationToken);

        Assert.True(outcome.Stopped, outcome.Summary);
        Assert.Equal(1, outcome.BatchesRun);
        var states = outcome.Hosts.ToDictionary(h => h.Label);
        Assert.All(FirstBatchGood, h => Assert.Equal(FleetHostState.Succeeded, states[h].State));
        Assert.Equal((FleetHostState.Failed, 3, false), (states["host03"].State, states["host03"].ExitCode, states["host03"].StepMayBeRunning));
        Assert.All(outcome.Hosts.Skip(5), h => Assert.Equal(FleetHostState.Pending, h.State));
        Assert.Contains("stopped after batch 1 of 2: too many hosts failed (host03)", outcome.Summary, StringComparison.Ordinal);
        // The second batch was never started: no step directory on its hosts.
        for (var i = 5; i < 10; i++)
        {
            Assert.Equal(1, (await rig.Fleet.RunAsync(i, "test -e ~/.upgradeconsole/runs/fleet-test", check: false)).ExitCode);
        }

        await rig.Fleet.RunAsync(2, "touch ~/fixed");
        var retried = await executor.RetryHostAsync("host03", TestContext.Current.CancellationToken);
        Assert.Equal((FleetHostState.Succeeded, 2), (retried.State, retried.Attempt));
        // The retry did not move the rollout on.
        Assert.All(executor.Progress.Hosts.Skip(5), h => Assert.Equal(FleetHostState.Pending, h.State));

        var rest = await executor.RunAsync(TestContext.Current.CancellationToken);
        Assert.True(rest.Succeeded, Labels(rest.Hosts));
        Assert.False(rest.Stopped);

        rig.Log.AssertEachLineOnce();
        foreach (var host in rest.Hosts)
        {
            var expected = Enumerable.Range(1, 25).Select(i => $"[{host.Label}] line {i} of {host.Label}").Append($"[{host.Label}] done on {host.Label}");
            Assert.Equal(expected, rig.Log.Of(host.Label, host.Attempt));
        }

        Assert.Equal([.. Enumerable.Range(1, 25).Select(i => $"[host03] line {i} of host03"), "[host03] host03 is broken"], rig.Log.Of("host03", 1));
        Assert.Equal(10 * 26 + 26, rig.Log.Lines.Count);
    }

    [Fact]
    public async Task AStoppedRolloutTakenUpAgain_RunsItsFailedHostFirst_ThenTheHostsNotStarted_AndNoHostThatSucceededAgain()
    {
        await using var rig = await Rig.StartAsync(6, portsPerDaemon: 3);
        const string script = """
            echo started >> "$HOME/starts"
            echo "working on $UC_FLEET_HOST"
            if [ "$UC_FLEET_HOST" = host03 ] && [ ! -e "$HOME/fixed" ]; then echo "host03 is broken"; exit 4; fi
            echo "done on $UC_FLEET_HOST"
            """;
        using var executor = rig.Executor(script, new FleetOptions { Batch = FleetBatchSize.OfHosts(2) });
        var stopped = await executor.RunAsync(TestContext.Current.CancellationToken);
        Assert.True(stopped.Stopped, stopped.Summary);
        Assert.Equal(["Succeeded", "Succeeded", "Failed", "Succeeded", "Pending", "Pending"], stopped.Hosts.Select(h => h.State.ToString()));

        await rig.Fleet.RunAsync(2, "touch ~/fixed");
        var outcome = await executor.RetryFailedThenRunAsync(TestContext.Current.CancellationToken);

        Assert.True(outcome.Succeeded, Labels(outcome.Hosts));
        Assert.Equal([1, 1, 2, 1, 1, 1], outcome.Hosts.Select(h => h.Attempt));
        for (var i = 0; i < 6; i++)
        {
            // Only host03 started twice (its failed attempt, then the retry); the others once.
            Assert.Equal(i == 2 ? "2" : "1", (await rig.Fleet.RunAsync(i, "wc -l < ~/starts")).StandardOutput.Trim());
        }

        rig.Log.AssertEachLineOnce();
        // Every change was told after the host's lines before it: a store that keeps the changes counts them in the log.
        Assert.All(rig.Log.Changes, c => Assert.Equal(c.Status.LinesStored, c.LinesWritten));
        Assert.Equal(["Running", "Running", "Failed", "Running", "Running", "Succeeded"],
            rig.Log.Changes.Where(c => c.Status.Label == "host03").Select(c => c.Status.State.ToString()));
        Assert.Equal(["Succeeded", "Succeeded", "Succeeded", "Succeeded", "Succeeded", "Succeeded"],
            outcome.Hosts.Select(h => rig.Log.Changes.Last(c => c.Status.Label == h.Label).Status.State.ToString()));
    }

    [Fact]
    public async Task BoundOfThree_TheHostsNeverRunMoreThanThreeStepsAtOnce()
    {
        await using var rig = await Rig.StartAsync(10, portsPerDaemon: 5);
        // Each step counts itself in and out under a lock on the shared directory and records the most seen at once;
        // it waits for the test's gate so that the bound is reached before any step ends.
        const string script = """
            d=$UC_SHARED
            exec 9>>"$d/lock"
            flock 9; n=$(( $(cat "$d/running" 2>/dev/null || echo 0) + 1 )); echo $n > "$d/running"
            m=$(cat "$d/max" 2>/dev/null || echo 0); [ "$n" -gt "$m" ] && echo $n > "$d/max"; flock -u 9
            echo "in on $UC_FLEET_HOST"
            while [ ! -e "$d/gate" ]; do sleep 0.05; done
            flock 9; echo $(( $(cat "$d/running") - 1 )) > "$d/running"; flock -u 9
            echo "out of $UC_FLEET_HOST"
            """;
        using var executor = rig.Executor(script, new FleetOptions { MaxConcurrency = 3 }, new Dictionary<string, string> { ["UC_SHARED"] = rig.Fleet.Shared });
        var running = executor.RunAsync(TestContext.Current.CancellationToken);

        var counter = Path.Combine(rig.Fleet.Shared, "running");
        await Eventually.TrueAsync(() => Task.FromResult(File.Exists(counter) && File.ReadAllText(counter).Trim() == "3"), TimeSpan.FromSeconds(60),
            () => Labels(executor.Progress.Hosts));
        Assert.Equal(3, executor.Progress.Count(FleetHostState.Running));
        Assert.Equal(7, executor.Progress.Count(FleetHostState.Pending));
        await rig.Fleet.RunAsync(0, $"touch {rig.Fleet.Shared}/gate");

        var outcome = await running;
        Assert.True(outcome.Succeeded, Labels(outcome.Hosts));
        Assert.Equal("3", (await File.ReadAllTextAsync(Path.Combine(rig.Fleet.Shared, "max"))).Trim());
        Assert.Equal("0", (await File.ReadAllTextAsync(counter)).Trim());
        rig.Log.AssertEachLineOnce();
        Assert.Equal(20, rig.Log.Lines.Count);
    }

    [Fact]
    public async Task AHostDownBeforeItsStep_IsUnreachableWithNothingStartedAndARetryRunsIt()
    {
        await using var rig = await Rig.StartAsync(4, switchable: true);
        rig.Fleet.MakeUnreachable(1);
        using var executor = rig.Executor("echo \"hello from $UC_FLEET_HOST\"", new FleetOptions { Policy = new FleetFailurePolicy(1) });

        var outcome = await executor.RunAsync(TestContext.Current.CancellationToken);

        Assert.False(outcome.Stopped, outcome.Summary);
        var down = outcome.Hosts[1];
        Assert.Equal((FleetHostState.Unreachable, false), (down.State, down.StepMayBeRunning));
        Assert.Contains("nothing was started", down.Describe(), StringComparison.Ordinal);
        Assert.Equal(3, outcome.Hosts.Count(h => h.State == FleetHostState.Succeeded));
        Assert.Equal(1, (await rig.Fleet.RunAsync(1, "test -e ~/.upgradeconsole/runs/fleet-test", check: false)).ExitCode);

        rig.Fleet.MakeReachable(1);
        var retried = await executor.RetryHostAsync("host02", TestContext.Current.CancellationToken);
        Assert.Equal((FleetHostState.Succeeded, 1), (retried.State, retried.Attempt));
        rig.Log.AssertEachLineOnce();
        Assert.Equal(["[host02] hello from host02"], rig.Log.Of("host02", 1));
    }

    [Fact]
    public async Task AHostLostMidStep_SaysItsStepMayStillRunAndARetryReattachesWithoutRunningItTwice()
    {
        await using var rig = await Rig.StartAsync(3, switchable: true);
        const string script = """
            echo started >> "$HOME/starts"
            for i in 1 2 3 4 5; do echo "before $i on $UC_FLEET_HOST"; done
            while [ ! -e "$HOME/go" ]; do sleep 0.05; done
            for i in 1 2 3 4 5; do echo "after $i on $UC_FLEET_HOST"; done
            """;
        using var executor = rig.Executor(script, new FleetOptions { Policy = new FleetFailurePolicy(1) });
        var running = executor.RunAsync(TestContext.Current.CancellationToken);
        await Eventually.TrueAsync(() => Task.FromResult(executor.Progress.Hosts.All(h => h.LinesStored == 5)), TimeSpan.FromSeconds(60),
            () => Labels(executor.Progress.Hosts));

        rig.Fleet.MakeUnreachable(1);
        // The step carries on on the host, out of the dashboard's reach (the test reaches sshd directly).
        for (var i = 0; i < 3; i++)
        {
            await rig.Fleet.RunAsync(i, "touch ~/go");
        }

        var outcome = await running;
        var lost = outcome.Hosts[1];
        Assert.Equal((FleetHostState.Unreachable, true, 5L), (lost.State, lost.StepMayBeRunning, lost.LinesStored));
        Assert.Contains("may still be running", outcome.Summary, StringComparison.Ordinal);
        Assert.Equal(2, outcome.Hosts.Count(h => h.State == FleetHostState.Succeeded));

        rig.Fleet.MakeReachable(1);
        var retried = await executor.RetryHostAsync("host02", TestContext.Current.CancellationToken);
        Assert.Equal((FleetHostState.Succeeded, 1, 10L), (retried.State, retried.Attempt, retried.LinesStored));
        rig.Log.AssertEachLineOnce();
        Assert.Equal(
            [.. Enumerable.Range(1, 5).Select(i => $"[host02] before {i} on host02"), .. Enumerable.Range(1, 5).Select(i => $"[host02] after {i} on host02")],
            rig.Log.Of("host02", 1));
        Assert.Equal("started", (await rig.Fleet.RunAsync(1, "cat ~/starts")).StandardOutput.Trim());
    }

    [Fact]
    public async Task AKilledDashboard_ANewExecutorFromTheStoredProgressReattachesEachHost()
    {
        await using var rig = await Rig.StartAsync(4, portsPerDaemon: 4);
        const string script = """
            echo started >> "$HOME/starts"
            for i in 1 2 3; do echo "before $i"; done
            while [ ! -e "$HOME/go" ]; do sleep 0.05; done
            for i in 1 2 3; do echo "after $i"; done
            """;
        using var stopping = new CancellationTokenSource();
        FleetHostStatus[] stored;
        using (var first = rig.Executor(script, new FleetOptions()))
        {
            var running = first.RunAsync(stopping.Token);
            await Eventually.TrueAsync(() => Task.FromResult(first.Progress.Hosts.All(h => h.LinesStored == 3)), TimeSpan.FromSeconds(60),
                () => Labels(first.Progress.Hosts));
            // The dashboard stops: what it stored is the progress and the lines; the steps run on, detached.
            await stopping.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
            stored = [.. first.Progress.Hosts];
        }

        Assert.All(stored, h => Assert.Equal(FleetHostState.Running, h.State));
        for (var i = 0; i < 4; i++)
        {
            await rig.Fleet.RunAsync(i, "touch ~/go");
        }

        using var second = new FleetExecutor(rig.Hosts, new FleetStep { RunId = "fleet-test", StepId = "step", Script = script }, rig.Log,
            new FleetOptions { Engine = QuickRetries }, new FleetProgress(stored));
        var outcome = await second.RunAsync(TestContext.Current.CancellationToken);

        Assert.True(outcome.Succeeded, Labels(outcome.Hosts));
        rig.Log.AssertEachLineOnce();
        foreach (var host in outcome.Hosts)
        {
            Assert.Equal(["before 1", "before 2", "before 3", "after 1", "after 2", "after 3"], rig.Log.Of(host.Label, 1).Select(l => l[(host.Label.Length + 3)..]));
        }

        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("started", (await rig.Fleet.RunAsync(i, "cat ~/starts")).StandardOutput.Trim());
        }
    }
}
