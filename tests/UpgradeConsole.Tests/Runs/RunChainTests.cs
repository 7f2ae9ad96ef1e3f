using UpgradeConsole.Core.BackendAi;
using UpgradeConsole.Web.BackendAi;
using UpgradeConsole.Web.Chains;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>The pure rules of a chain of runs (ADR 0028): what a hop records, how it is described, when a next hop is due.</summary>
public sealed class RunChainTests
{
    /// <summary>23.09.9 → 24.03.0: a minor hop, then a major one (shared with the tests that seed chains).</summary>
    internal static readonly IReadOnlyList<ChainHop> TwoHops =
    [
        new("23.09.9", "23.09.10", "minor", "backendai-minor"),
        new("23.09.10", "24.03.0", "major", "backendai-major"),
    ];

    private static Run FirstHop(RunState state)
    {
        var run = new Run { Id = 7, FromVersion = "23.09.9", ToVersion = "23.09.10", State = state };
        RunChain.Link(run, ChainLink.First(TwoHops));
        return run;
    }

    [Fact]
    public void Link_FirstHop_RecordsTheChainAndEveryHop()
    {
        var run = FirstHop(RunState.Planned);

        Assert.Equal(32, run.ChainId!.Length);
        Assert.Equal((1, 2, "24.03.0", (int?)null), (run.ChainIndex, run.ChainLength, run.ChainTo, run.ChainPreviousRunId));
        Assert.Equal(TwoHops, RunChain.Hops(run));
    }

    [Fact]
    public void Describe_AHopOfAChain_NamesTheHopAndTheChainsEnds()
    {
        Assert.Equal("hop 1 of 2 of the chain 23.09.9 → 24.03.0", RunChain.Describe(FirstHop(RunState.Running)));
        Assert.Null(RunChain.Describe(new Run()));
    }

    [Fact]
    public void Next_AfterASucceededFirstHop_IsTheSecondHopWithTheApprovalCarried()
    {
        var run = FirstHop(RunState.Succeeded);
        var at = new DateTimeOffset(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);

        var next = RunChain.Next(run, "approver@example.org", at);

        Assert.NotNull(next);
        Assert.Equal((run.ChainId, 2, 7, "approver@example.org", (DateTimeOffset?)at), (next.ChainId, next.Index, next.PreviousRunId, next.ApprovedBy, next.ApprovedAt));
        Assert.Equal(TwoHops[1], next.Hop);
    }

    [Theory]
    [InlineData(RunState.Failed)]
    [InlineData(RunState.NeedsAttention)]
    [InlineData(RunState.RolledBack)]
    [InlineData(RunState.Abandoned)]
    [InlineData(RunState.Running)]
    [InlineData(RunState.WaitingForChecklist)]
    public void Next_AfterAHopThatDidNotSucceed_IsNone(RunState state) => Assert.Null(RunChain.Next(FirstHop(state), null, null));

    [Fact]
    public void Next_AfterTheLastHop_IsNone()
    {
        var last = new Run { Id = 8, State = RunState.Succeeded };
        RunChain.Link(last, new ChainLink("c", 2, TwoHops, 7));

        Assert.Null(RunChain.Next(last, null, null));
        Assert.Null(RunChain.Next(new Run { State = RunState.Succeeded }, null, null));
    }

    [Fact]
    public void ChainHopOf_ThePlannersChain_NamesEachHopsRunbook()
    {
        var releases = BackendAiReleases.Read(["23.09.9", "23.09.10", "24.03.0"], out var error);
        Assert.Null(error);
        var chain = UpgradePath.Plan(releases, BackendAiVersion.Parse("23.09.9"), BackendAiVersion.Parse("24.03.0"));

        Assert.Equal(TwoHops, chain.Hops.Select(BackendAiRuntime.ChainHopOf));
    }

    [Fact]
    public void ChainHop_ToString_ReadsAsTheRefusalNamesHops() => Assert.Equal("23.09.10 → 24.03.0 (major)", TwoHops[1].ToString());
}
