using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Fractal;

/// <summary>
/// One read of a target's users answers many pages: each filter and sort's order is worked out once per read and
/// reused; the pages read from it are those a fresh ordering gives, and a search is ordered on its own.
/// </summary>
public sealed class UsersViewTests
{
    private static readonly UsersView View = new(new Target { Name = "t" }, "slurm", MigrationRules.Classify(
        Enumerable.Range(1, 300).Select(i => new FractalUser
        {
            Id = i,
            Email = $"{(char)('a' + (i * 7 % 26))}{i}@example.org",
            IsActive = i % 3 != 0,
            IsVerified = i % 5 != 0,
            SettingsId = i % 11 == 0 ? null : i,
            ProjectDir = i % 4 == 0 ? null : $"/data/{i % 9}",
            SlurmUser = i % 6 == 0 ? null : $"u{i}",
        }), "slurm"));

    public static TheoryData<string, string, bool> Queries()
    {
        var data = new TheoryData<string, string, bool>();
        foreach (var filter in UsersQuery.Filters)
        {
            foreach (var sort in UsersQuery.Sorts)
            {
                data.Add(filter, sort, false);
                data.Add(filter, sort, true);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Queries))]
    public void EveryFilterAndSort_IsOrderedOnce_AsAFreshOrderingWouldBe(string filter, string sort, bool descending)
    {
        var query = new UsersQuery(filter, null, sort, 2, descending, 25);
        var first = View.Matching(query);
        Assert.Equal(query.Apply(View.Verdicts).Select(v => v.User.Id), first.Select(v => v.User.Id));
        Assert.Same(first, View.Matching(query with { Page = 3 }));
    }

    [Fact]
    public void ASearch_IsOrderedEachTime_AndMatchesOnlyItsUsers()
    {
        var query = new UsersQuery("all", "a1", "email");
        var found = View.Matching(query);
        Assert.NotEmpty(found);
        Assert.All(found, v => Assert.Contains("a1", v.User.Email, StringComparison.OrdinalIgnoreCase));
        Assert.Equal(found.Select(v => v.User.Email).Order(StringComparer.OrdinalIgnoreCase), found.Select(v => v.User.Email));
        Assert.NotSame(found, View.Matching(query));
    }

    [Fact]
    public void Counts_AreOverAllUsers_WhateverThePage()
    {
        Assert.Equal(new UsersCounts(300, View.Count(MigrationOutcome.Blocks), View.Count(MigrationOutcome.LeftOut), View.Count(MigrationOutcome.Migrated)), View.Counts);
        Assert.Equal(300, View.Counts.Blocks + View.Counts.LeftOut + View.Counts.Migrated);
    }
}
