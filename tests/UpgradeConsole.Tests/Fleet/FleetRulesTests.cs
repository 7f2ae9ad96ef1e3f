using UpgradeConsole.Core.Fleet;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Tests.Fleet;

/// <summary>The pure rules of fleet execution: batches, the failure policy, and every host state transition.</summary>
public sealed class FleetRulesTests
{
    [Theory]
    [InlineData("10", 10, null)]
    [InlineData(" 3 ", 3, null)]
    [InlineData("1", 1, null)]
    [InlineData("25%", null, 25)]
    [InlineData("100%", null, 100)]
    [InlineData("1 %", null, 1)]
    public void TryParse_AGoodSize_GivesHostsOrPercent(string text, int? hosts, int? percent)
    {
        Assert.True(FleetBatchSize.TryParse(text, out var size, out var problem), problem);
        Assert.Equal(hosts, size.Hosts);
        Assert.Equal(percent, size.Percent);
    }

    [Theory]
    [InlineData("all")]
    [InlineData("ALL")]
    public void TryParse_All_IsOneBatch(string text)
    {
        Assert.True(FleetBatchSize.TryParse(text, out var size, out _));
        Assert.Same(FleetBatchSize.All, size);
        Assert.Equal(7, size.HostsPerBatch(7));
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("0")]
    [InlineData("-2")]
    [InlineData("0%")]
    [InlineData("101%")]
    [InlineData("2.5")]
    [InlineData("%")]
    [InlineData("ten")]
    [InlineData("5;rm -rf /")]
    public void TryParse_ABadSize_IsRefusedWithASentence(string? text)
    {
        Assert.False(FleetBatchSize.TryParse(text, out _, out var problem));
        Assert.False(string.IsNullOrWhiteSpace(problem));
    }

    [Theory]
    [InlineData(10, 25, 3)] // rounded up, never down
    [InlineData(10, 10, 1)]
    [InlineData(10, 100, 10)]
    [InlineData(3, 1, 1)] // never zero
    [InlineData(200, 10, 20)]
    [InlineData(201, 10, 21)]
    [InlineData(1, 50, 1)]
    public void HostsPerBatch_Percent_RoundsUpAndIsAtLeastOne(int fleet, int percent, int expected) =>
        Assert.Equal(expected, FleetBatchSize.OfPercent(percent).HostsPerBatch(fleet));

    [Fact]
    public void HostsPerBatch_MoreHostsThanTheFleet_IsTheFleet() =>
        Assert.Equal(4, FleetBatchSize.OfHosts(50).HostsPerBatch(4));

    [Fact]
    public void HostsPerBatch_EmptyFleet_IsZero()
    {
        Assert.Equal(0, FleetBatchSize.OfHosts(5).HostsPerBatch(0));
        Assert.Empty(FleetBatches.Split(Array.Empty<string>(), FleetBatchSize.OfPercent(10)));
    }

    [Fact]
    public void OfHostsOrPercent_OutOfRange_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => FleetBatchSize.OfHosts(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => FleetBatchSize.OfPercent(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => FleetBatchSize.OfPercent(101));
    }

    /// <summary>For every fleet size up to 60 and every batch size: each host in exactly one batch, in order, every batch but the last full.</summary>
    [Fact]
    public void Split_EverySizeAndFleet_CoversEachHostOnceInOrder()
    {
        for (var fleet = 0; fleet <= 60; fleet++)
        {
            var hosts = Enumerable.Range(0, fleet).Select(i => $"h{i}").ToList();
            var sizes = Enumerable.Range(1, 61).Select(FleetBatchSize.OfHosts)
                .Concat(Enumerable.Range(1, 100).Select(FleetBatchSize.OfPercent))
                .Append(FleetBatchSize.All);
            foreach (var size in sizes)
            {
                var batches = FleetBatches.Split(hosts, size);
                Assert.Equal(hosts, batches.SelectMany(b => b));
                var per = size.HostsPerBatch(fleet);
                Assert.All(batches.SkipLast(1), b => Assert.Equal(per, b.Count));
                Assert.All(batches, b => Assert.InRange(b.Count, 1, per));
                Assert.Equal(fleet == 0 ? 0 : (fleet + per - 1) / per, batches.Count);
            }
        }
    }

    [Theory]
    [InlineData(0, 0, false)]
    [InlineData(0, 1, true)]
    [InlineData(2, 2, false)]
    [InlineData(2, 3, true)]
    public void MustStop_MoreFailuresThanAllowed_Stops(int allowed, int failures, bool stops) =>
        Assert.Equal(stops, new FleetFailurePolicy(allowed).MustStop(failures));

    [Fact]
    public void Policy_NegativeAllowance_Throws() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new FleetFailurePolicy(-1));

    private static FleetProgress OneHostIn(FleetHostState state, bool stepMayBeRunning = false, int attempt = 1, long lines = 0) =>
        new([new FleetHostStatus("h", state, attempt, lines, stepMayBeRunning, null, null)]);

    /// <summary>Every state × every operation: what is allowed, and what it leads to.</summary>
    [Theory]
    [InlineData(FleetHostState.Pending, "begin", FleetHostState.Running)]
    [InlineData(FleetHostState.Pending, "succeed", null)]
    [InlineData(FleetHostState.Pending, "fail", null)]
    [InlineData(FleetHostState.Pending, "unreachable", null)]
    [InlineData(FleetHostState.Pending, "line", null)]
    [InlineData(FleetHostState.Running, "begin", null)]
    [InlineData(FleetHostState.Running, "succeed", FleetHostState.Succeeded)]
    [InlineData(FleetHostState.Running, "fail", FleetHostState.Failed)]
    [InlineData(FleetHostState.Running, "unreachable", FleetHostState.Unreachable)]
    [InlineData(FleetHostState.Running, "line", FleetHostState.Running)]
    [InlineData(FleetHostState.Succeeded, "begin", null)]
    [InlineData(FleetHostState.Succeeded, "succeed", null)]
    [InlineData(FleetHostState.Succeeded, "fail", null)]
    [InlineData(FleetHostState.Succeeded, "unreachable", null)]
    [InlineData(FleetHostState.Succeeded, "line", null)]
    [InlineData(FleetHostState.Failed, "begin", FleetHostState.Running)]
    [InlineData(FleetHostState.Failed, "succeed", null)]
    [InlineData(FleetHostState.Failed, "fail", null)]
    [InlineData(FleetHostState.Failed, "unreachable", null)]
    [InlineData(FleetHostState.Failed, "line", null)]
    [InlineData(FleetHostState.Unreachable, "begin", FleetHostState.Running)]
    [InlineData(FleetHostState.Unreachable, "succeed", null)]
    [InlineData(FleetHostState.Unreachable, "fail", null)]
    [InlineData(FleetHostState.Unreachable, "unreachable", null)]
    [InlineData(FleetHostState.Unreachable, "line", null)]
    public void Transition_EveryStateAndOperation_IsAllowedOrRefused(FleetHostState from, string operation, FleetHostState? to)
    {
        var progress = OneHostIn(from);
        Action act = operation switch
        {
            "begin" => () => progress.Begin("h"),
            "succeed" => () => progress.Succeed("h"),
            "fail" => () => progress.Fail("h", 2, "exit 2"),
            "unreachable" => () => progress.Unreachable("h", false, "refused"),
            _ => () => progress.LineStored("h"),
        };
        if (to is null)
        {
            var refused = Assert.Throws<InvalidOperationException>(act);
            Assert.Contains("Host h cannot", refused.Message, StringComparison.Ordinal);
            Assert.Equal(from, progress["h"].State);
        }
        else
        {
            act();
            Assert.Equal(to, progress["h"].State);
        }
    }

    [Fact]
    public void Begin_RunningWhenReattachingStoredProgress_KeepsTheAttemptAndLines()
    {
        var progress = OneHostIn(FleetHostState.Running, stepMayBeRunning: true, attempt: 2, lines: 40);
        var before = progress.Begin("h", reattachRunning: true);
        Assert.True(FleetProgress.Reattaches(before));
        Assert.Equal((FleetHostState.Running, 2, 40L), (progress["h"].State, progress["h"].Attempt, progress["h"].LinesStored));
    }

    [Fact]
    public void Begin_AfterAFailure_IsANewAttemptWithNoLines()
    {
        var progress = OneHostIn(FleetHostState.Failed, attempt: 1, lines: 12);
        var before = progress.Begin("h");
        Assert.False(FleetProgress.Reattaches(before));
        Assert.Equal((2, 0L, false), (progress["h"].Attempt, progress["h"].LinesStored, progress["h"].StepMayBeRunning));
    }

    [Fact]
    public void Begin_UnreachableMidStep_ReattachesTheSameAttemptAndKeepsItsLines()
    {
        var progress = OneHostIn(FleetHostState.Unreachable, stepMayBeRunning: true, attempt: 3, lines: 7);
        var before = progress.Begin("h");
        Assert.True(FleetProgress.Reattaches(before));
        Assert.Equal((3, 7L), (progress["h"].Attempt, progress["h"].LinesStored));
    }

    [Fact]
    public void Begin_UnreachableBeforeItsStep_StartsTheSameAttempt()
    {
        var progress = OneHostIn(FleetHostState.Unreachable, stepMayBeRunning: false, attempt: 1);
        Assert.False(FleetProgress.Reattaches(progress.Begin("h")));
        Assert.Equal(1, progress["h"].Attempt);
    }

    [Fact]
    public void Unreachable_AfterTheStepStarted_SaysItMayStillRun()
    {
        var progress = new FleetProgress(["h"]);
        progress.Begin("h");
        progress.Started("h");
        var status = progress.Unreachable("h", false, "connection refused");
        Assert.True(status.StepMayBeRunning);
        Assert.Contains("may still be running", status.Describe(), StringComparison.Ordinal);
        Assert.Contains("reattaches", status.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Unreachable_BeforeAnythingWasSent_SaysNothingStarted()
    {
        var progress = new FleetProgress(["h"]);
        progress.Begin("h");
        var status = progress.Unreachable("h", false, "connection refused");
        Assert.False(status.StepMayBeRunning);
        Assert.Contains("nothing was started", status.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Failures_CountFailedAndUnreachableOnly()
    {
        var progress = new FleetProgress(["a", "b", "c", "d", "e"]);
        foreach (var h in new[] { "a", "b", "c", "d" })
        {
            progress.Begin(h);
        }

        progress.Succeed("a");
        progress.Fail("b", 1, "exit 1");
        progress.Unreachable("c", false, "refused");
        Assert.Equal(2, progress.Failures);
        Assert.Equal(1, progress.Count(FleetHostState.Running));
        Assert.Equal(1, progress.Count(FleetHostState.Pending));

        // A retried host that succeeds is no failure any more.
        progress.Begin("b");
        progress.Succeed("b");
        Assert.Equal(1, progress.Failures);
    }

    [Fact]
    public void Progress_DuplicateOrUnknownHost_IsRefused()
    {
        Assert.Throws<ArgumentException>(() => new FleetProgress(["a", "a"]));
        Assert.Throws<ArgumentException>(() => new FleetProgress([" "]));
        Assert.Throws<KeyNotFoundException>(() => new FleetProgress(["a"]).Begin("b"));
    }

    [Fact]
    public void Summary_StoppedRollout_NamesTheFailedAndTheMidStepHosts()
    {
        var outcome = new FleetOutcome(true, 4, 1,
        [
            new("a", FleetHostState.Succeeded, 1, 3, false, 0, null),
            new("b", FleetHostState.Failed, 1, 3, false, 2, "the step exited with 2"),
            new("c", FleetHostState.Unreachable, 1, 1, true, null, "lost"),
            new("d", FleetHostState.Pending, 1, 0, false, null, null),
        ]);
        Assert.False(outcome.Succeeded);
        Assert.Equal("4 host(s): 1 pending, 1 succeeded, 1 failed, 1 unreachable; stopped after batch 1 of 4: too many hosts failed (b, c); the step may still be running on c (unreachable mid-step).", outcome.Summary);
    }

    [Theory]
    [InlineData("agent-01", "agent-01")]
    [InlineData("gpu_07", "gpu_07")]
    public void HostId_APlainLabel_IsKept(string label, string id) => Assert.Equal(id, FleetExecutor.HostId(label));

    [Fact]
    public void HostId_LabelsThatAreNotPlain_BecomeDistinctValidIds()
    {
        var labels = new[] { "root@gpu01:22", "root@gpu01:2222", "agent 01", "agent/01", "a.b", "../x", "ü", new string('x', 200), new string('x', 201) };
        var ids = labels.Select(FleetExecutor.HostId).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.All(ids, id => Assert.True(StepLocation.IsValidId(id) && id.Length <= 40, id));
        var step = new FleetStep { RunId = "run-1", StepId = "upgrade", Script = "true" };
        Assert.Equal("upgrade.agent-01", FleetExecutor.Location(step, "agent-01", 1).StepId);
        Assert.Equal("upgrade.agent-01.a2", FleetExecutor.Location(step, "agent-01", 2).StepId);
    }
}
