using UpgradeConsole.Core.BackendAi;

namespace UpgradeConsole.Tests.BackendAi;

/// <summary>
/// The upgrade-path rules of Backend.AI's guide (shared/design/runbooks.md): every allowed and forbidden
/// example it gives, then properties over seeded random release histories.
/// </summary>
public sealed class UpgradePathRulesTests
{
    /// <summary>A history shaped like Backend.AI's: 23.03.0–11, 23.09.0–10, 24.03.0–5, 24.09.0–2.</summary>
    private static readonly BackendAiReleases Guide = History(("23.03", 11), ("23.09", 10), ("24.03", 5), ("24.09", 2));

    private static BackendAiReleases History(params (string Series, int LastPatch)[] series) =>
        new(series.SelectMany(s => Enumerable.Range(0, s.LastPatch + 1).Select(p => BackendAiVersion.Parse($"{s.Series}.{p}"))));

    private static BackendAiVersion V(string text) => BackendAiVersion.Parse(text);

    private static HopRefusal? CheckChain(params string[] chain) => UpgradePath.CheckChain(Guide, [.. chain.Select(V)]);

    [Theory]
    [InlineData("23.09.10", "24.03.0")]
    [InlineData("23.09.10", "24.03.5")]
    [InlineData("23.09.9", "23.09.10", "24.03.0")]
    [InlineData("24.03.0", "24.03.1")]
    public void TheGuidesAllowedPaths_AreAllowed(params string[] chain) => Assert.Null(CheckChain(chain));

    [Fact]
    public void TheGuidesLongPath_ThroughEveryMinorOf2309_IsAllowed()
    {
        string[] chain = ["23.03.11", .. Enumerable.Range(0, 11).Select(p => $"23.09.{p}"), "24.03.0"];
        Assert.Null(CheckChain(chain));
    }

    [Fact]
    public void FromANotLatestMinor_AMajorUpgradeIsRefused_NamingTheLatest()
    {
        var refusal = CheckChain("23.09.9", "24.03.0");
        Assert.NotNull(refusal);
        Assert.Equal(UpgradeRule.MajorFromLatestMinor, refusal.Rule);
        Assert.Contains("(23.09.10)", refusal.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void SkippingAMajor_IsRefused_NamingTheSkippedRelease()
    {
        var refusal = CheckChain("23.03.0", "24.03.0");
        Assert.NotNull(refusal);
        Assert.Equal(UpgradeRule.NoMajorSkipped, refusal.Rule);
        Assert.Contains("skips the 23.09 release", refusal.Reason, StringComparison.Ordinal);

        // From the latest minor too: the skip is the rule broken.
        Assert.Equal(UpgradeRule.NoMajorSkipped, CheckChain("23.03.11", "24.03.0")!.Rule);
    }

    [Fact]
    public void SkippingAMinor_IsRefused_NamingTheReleaseSkipped()
    {
        var refusal = CheckChain("24.03.0", "24.03.2");
        Assert.NotNull(refusal);
        Assert.Equal(UpgradeRule.MinorConsecutive, refusal.Rule);
        Assert.Contains("skips 24.03.1", refusal.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void TheFirstForbiddenHop_IsTheOneReported()
    {
        var refusal = CheckChain("23.09.8", "23.09.9", "24.03.0", "24.03.2");
        Assert.Equal((V("23.09.9"), V("24.03.0")), (refusal!.From, refusal.To));
    }

    [Theory]
    [InlineData("24.03.1", "24.03.0", UpgradeRule.Forward)]
    [InlineData("24.03.1", "24.03.1", UpgradeRule.Forward)]
    [InlineData("24.03.5", "24.03.6", UpgradeRule.Released)]
    [InlineData("22.09.0", "23.03.0", UpgradeRule.Released)]
    public void BackwardsSameOrUnreleased_AreRefused(string from, string to, UpgradeRule rule) =>
        Assert.Equal(rule, CheckChain(from, to)!.Rule);

    [Fact]
    public void ThePlan_FromALatestMinor_IsOneMajorHop()
    {
        var plan = UpgradePath.Plan(Guide, V("23.09.10"), V("24.03.5"));
        Assert.Equal([new UpgradeHop(V("23.09.10"), V("24.03.5"), HopKind.Major)], plan.Hops);
    }

    [Fact]
    public void ThePlan_Walks_TheMinorsFirst_ThenEachSeries()
    {
        var plan = UpgradePath.Plan(Guide, V("23.03.9"), V("24.09.1"));
        Assert.Equal(
            ["23.03.10", "23.03.11", "23.09.10", "24.03.5", "24.09.1"],
            plan.Hops.Select(h => h.To.ToString()));
        Assert.Equal(
            [HopKind.Minor, HopKind.Minor, HopKind.Major, HopKind.Major, HopKind.Major],
            plan.Hops.Select(h => h.Kind));
    }

    [Fact]
    public void ThePlan_ToTheInstalledVersion_IsEmpty_AndBackwardsIsRefused()
    {
        Assert.Empty(UpgradePath.Plan(Guide, V("24.03.1"), V("24.03.1")).Hops);
        Assert.True(UpgradePath.Plan(Guide, V("24.03.1"), V("24.03.1")).IsAllowed);
        Assert.Equal(UpgradeRule.Forward, UpgradePath.Plan(Guide, V("24.03.1"), V("23.09.10")).Refusal!.Rule);
        Assert.Equal(UpgradeRule.Released, UpgradePath.Plan(Guide, V("24.03.1"), V("24.03.9")).Refusal!.Rule);
    }

    [Theory]
    [InlineData("23.9.10", "23.09.10")]
    [InlineData("v24.03.5", "24.03.5")]
    [InlineData(" 24.03.0 ", "24.03.0")]
    public void PipsNormalisedSpelling_IsTheSameVersion(string text, string shown) =>
        Assert.Equal(shown, V(text).ToString());

    [Theory]
    [InlineData("24.09.0rc1", "pre- or post-release")]
    [InlineData("24.09.0.dev0", "pre- or post-release")]
    [InlineData("24.09.0a1", "pre- or post-release")]
    [InlineData("24.13.0", "month")]
    [InlineData("24.03", "not a Backend.AI version")]
    [InlineData("latest", "not a Backend.AI version")]
    public void WhatIsNotAFinalRelease_IsSaidSo(string text, string said)
    {
        Assert.False(BackendAiVersion.TryParse(text, out _, out var error));
        Assert.Contains(said, error, StringComparison.Ordinal);
    }

    [Fact]
    public void AReleaseList_InAnyOrder_SkipsPreReleasesAndComments_AndNamesTheBadLine()
    {
        var releases = BackendAiReleases.Read(["24.03.1", "# the 23.09 series", "23.09.10", "", "24.09.0rc1", "24.03.0"], out var error);
        Assert.Null(error);
        Assert.Equal(["23.09.10", "24.03.0", "24.03.1"], releases.Versions.Select(v => v.ToString()));
        Assert.Single(releases.Skipped);

        BackendAiReleases.Read(["24.03.0", "24.03.x"], out error);
        Assert.StartsWith("line 2:", error, StringComparison.Ordinal);
        BackendAiReleases.Read(["# nothing"], out error);
        Assert.NotNull(error);
    }

    /// <summary>
    /// Over seeded random histories (gaps in patch numbers, series of one release): every chain the planner
    /// returns is allowed hop by hop and ends where asked; none is longer than the shortest allowed chain
    /// (found by a breadth-first search over <see cref="UpgradePath.Check"/>); the planner refuses only when no
    /// allowed chain exists.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void ThePlanner_OnlyReturnsAllowedShortestChains(int seed)
    {
        var random = new Random(seed);
        for (var history = 0; history < 40; history++)
        {
            var versions = new List<BackendAiVersion>();
            var seriesCount = random.Next(1, 5);
            for (var s = 0; s < seriesCount; s++)
            {
                var (year, month) = (20 + s / 2, s % 2 == 0 ? 3 : 9);
                var patch = random.Next(0, 2);
                for (var n = random.Next(1, 6); n > 0; n--)
                {
                    versions.Add(new(year, month, patch));
                    patch += random.Next(1, 3);
                }
            }

            var releases = new BackendAiReleases(versions);
            var all = releases.Versions.ToArray();
            foreach (var from in all)
            {
                foreach (var to in all)
                {
                    var plan = UpgradePath.Plan(releases, from, to);
                    var shortest = ShortestAllowed(releases, from, to);
                    if (to < from)
                    {
                        Assert.False(plan.IsAllowed);
                        continue;
                    }

                    Assert.True(plan.IsAllowed, $"seed {seed}: {from} → {to} refused: {plan.Refusal?.Reason}");
                    Assert.NotNull(shortest);
                    var chain = new[] { from }.Concat(plan.Hops.Select(h => h.To)).ToArray();
                    Assert.Null(UpgradePath.CheckChain(releases, chain));
                    Assert.Equal(to, chain[^1]);
                    Assert.Equal(shortest, plan.Hops.Count);
                    Assert.All(plan.Hops, h => Assert.Equal(UpgradePath.KindOf(h.From, h.To), h.Kind));
                }
            }
        }
    }

    /// <summary>For every pair of released versions: a hop the checker allows is minor-consecutive or a major from the latest minor into the next series, never anything else.</summary>
    [Fact]
    public void TheChecker_AllowsExactlyTheGuidesTwoKindsOfHop()
    {
        var all = Guide.Versions.ToArray();
        foreach (var from in all)
        {
            foreach (var to in all)
            {
                var allowed = UpgradePath.Check(Guide, from, to) is null;
                var minor = from.Series == to.Series && Guide.NextInSeries(from) == to;
                var major = from.Series != to.Series && Guide.Latest(from.Series) == from && Guide.NextSeries(from.Series) == to.Series;
                Assert.True(allowed == (minor || major), $"{from} → {to}: allowed {allowed}");
            }
        }
    }

    private static int? ShortestAllowed(BackendAiReleases releases, BackendAiVersion from, BackendAiVersion to)
    {
        var distance = new Dictionary<BackendAiVersion, int> { [from] = 0 };
        var queue = new Queue<BackendAiVersion>([from]);
        while (queue.TryDequeue(out var v))
        {
            if (v == to)
            {
                return distance[v];
            }

            foreach (var next in releases.Versions.Where(n => !distance.ContainsKey(n) && UpgradePath.Check(releases, v, n) is null))
            {
                distance[next] = distance[v] + 1;
                queue.Enqueue(next);
            }
        }

        return null;
    }
}
