using UpgradeConsole.Core.Fractal;

namespace UpgradeConsole.Tests.Core;

/// <summary>
/// A rehearsal sets update-db-data's result beside the plan's prediction: every user and the one resource that come out
/// as predicted are matches, and each difference is a finding (something the preflight did not foresee on this data).
/// </summary>
public sealed class MigrationComparisonTests
{
    private static readonly PredictedUser Alice = new(1, "alice@example.org", MigrationOutcome.Migrated, "Profile slurm_ssh alice", "/shared/alice");
    private static readonly PredictedUser Bob = new(2, "bob@example.org", MigrationOutcome.LeftOut, null, null);

    private static MigratedData Data(params MigratedUser[] users) => new(users, [(MigrationComparison.ResourceName, "slurm_ssh")]);

    [Fact]
    public void EverythingAsPredicted_IsMatchesOnly()
    {
        var result = MigrationComparison.Compare([Alice, Bob], "slurm_ssh",
            Data(new MigratedUser(1, Alice.Email, Alice.Profile, "/shared/alice"), new MigratedUser(2, Bob.Email, null, null)));
        Assert.Empty(result.Findings);
        Assert.Equal(3, result.Matches.Count);
    }

    [Fact]
    public void AUserWhoGotNoProfile_ThoughPredictedMigrated_IsAFinding()
    {
        var result = MigrationComparison.Compare([Alice, Bob], "slurm_ssh",
            Data(new MigratedUser(1, Alice.Email, null, null), new MigratedUser(2, Bob.Email, null, null)));
        Assert.Equal(["alice@example.org: predicted profile Profile slurm_ssh alice, project_dir /shared/alice, got no profile."], result.Findings);
    }

    [Fact]
    public void ADifferentProjectDir_IsAFinding_ButTheSamePathWrittenDifferentlyIsNot()
    {
        var predicted = PredictedUser.From(new UserVerdict(
            new FractalUser { Id = 1, Email = Alice.Email, IsActive = true, IsVerified = true, ProjectDir = " /shared/./x/../alice/ " },
            MigrationOutcome.Migrated, [], Alice.Profile));
        Assert.Equal("/shared/alice", predicted.ProjectDir);

        var same = MigrationComparison.Compare([predicted], "slurm_ssh", Data(new MigratedUser(1, Alice.Email, Alice.Profile, "/shared/alice")));
        Assert.Empty(same.Findings);
        var other = MigrationComparison.Compare([predicted], "slurm_ssh", Data(new MigratedUser(1, Alice.Email, Alice.Profile, "/elsewhere")));
        Assert.Equal(["alice@example.org: predicted project_dir /shared/alice, got /elsewhere."], other.Findings);
    }

    [Fact]
    public void AUserMissingOrUnforeseen_AndAnotherResource_AreFindings()
    {
        var result = MigrationComparison.Compare([Alice], "slurm_ssh",
            new MigratedData([new MigratedUser(3, "carol@example.org", "Profile local carol", null)], [("Other", "local")]));
        Assert.Equal(
        [
            "alice@example.org: predicted profile Profile slurm_ssh alice, project_dir /shared/alice, but the user is not in the rehearsed database.",
            "carol@example.org: not in the plan's prediction (added since?), got profile Profile local carol.",
            "resources: predicted one \"Resource Name\" of type slurm_ssh, got \"Other\" (local).",
        ], result.Findings);
        Assert.Empty(result.Matches);
    }

    [Theory]
    [InlineData("/a/b/../c/./d/", "/a/c/d")]
    [InlineData("  /a//b ", "/a/b")]
    [InlineData("/..", "/")]
    [InlineData("relative/dir", "relative/dir")]
    public void NormalizePath_IsPythonsNormpathOnAbsolutePaths(string path, string expected) =>
        Assert.Equal(expected, MigrationComparison.NormalizePath(path));
}
