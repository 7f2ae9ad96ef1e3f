using UpgradeConsole.Core.Fractal;

namespace UpgradeConsole.Tests.Core;

public sealed class MigrationRulesTests
{
    private static FractalUser User(int id, bool active = true, bool verified = true, int? settings = 1, string? projectDir = "/p", string? slurmUser = "u",
        string? sshUser = null, string? key = "/k", string? tasks = "/t", string? jobs = "/j", string accounts = "[]") => new()
    {
        Id = id,
        Email = $"u{id}@example.org",
        IsActive = active,
        IsVerified = verified,
        SettingsId = settings,
        ProjectDir = projectDir,
        SlurmUser = slurmUser,
        SshUsername = sshUser,
        SshPrivateKeyPath = key,
        SshTasksDir = tasks,
        SshJobsDir = jobs,
        SlurmAccounts = accounts,
    };

    [Theory]
    [InlineData(false, true, "not active")]
    [InlineData(true, false, "not verified")]
    [InlineData(false, false, "not active and not verified")]
    public void Classify_NotActiveOrNotVerified_IsLeftOut(bool active, bool verified, string reason)
    {
        var verdict = Assert.Single(MigrationRules.Classify([User(1, active, verified, settings: null, projectDir: null)], "slurm"));
        Assert.Equal(MigrationOutcome.LeftOut, verdict.Outcome);
        Assert.StartsWith(reason + ":", verdict.Reasons[0], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, "/p", "u", "no settings row")]
    [InlineData(1, null, "u", "project_dir is not set")]
    [InlineData(1, "", "u", "not an absolute path")]
    [InlineData(1, "rel/p", "u", "not an absolute path")]
    [InlineData(1, "/p", null, "no slurm_user")]
    [InlineData(1, "/p", " ", "no slurm_user")]
    public void Classify_SlurmSudo_MissingWhatTheMigrationNeeds_Blocks(int? settings, string? projectDir, string? slurmUser, string reason)
    {
        var verdict = Assert.Single(MigrationRules.Classify([User(1, settings: settings, projectDir: projectDir, slurmUser: slurmUser)], "slurm"));
        Assert.Equal(MigrationOutcome.Blocks, verdict.Outcome);
        Assert.Contains(verdict.Reasons, r => r.Contains(reason, StringComparison.Ordinal));
    }

    [Fact]
    public void Classify_SlurmSudo_SharedSlurmUser_SharesOneProfile()
    {
        var verdicts = MigrationRules.Classify([User(1, slurmUser: "lab"), User(2, slurmUser: "lab", projectDir: "/other")], "slurm");
        Assert.All(verdicts, v => Assert.Equal("Profile lab", v.ProfileName));
    }

    [Fact]
    public void Classify_SlurmSsh_SameUsernameDifferentKeys_BlocksBoth()
    {
        var verdicts = MigrationRules.Classify([User(1, sshUser: "x", key: "/k1"), User(2, sshUser: "x", key: "/k2"), User(3, sshUser: "y")], "slurm_ssh");
        Assert.Equal([MigrationOutcome.Blocks, MigrationOutcome.Blocks, MigrationOutcome.Migrated], verdicts.Select(v => v.Outcome));
        Assert.All(verdicts.Take(2), v => Assert.Contains("profile data mismatch", v.Reasons[0], StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(null, "/k", "/t", "/j", "no ssh_username")]
    [InlineData("x", null, "/t", "/j", "no ssh_private_key_path")]
    [InlineData("x", "/k", "t", "/j", "ssh_tasks_dir 't' is not absolute")]
    [InlineData("x", "/k", "/t", null, "no ssh_jobs_dir")]
    public void Classify_SlurmSsh_MissingSshSettings_Blocks(string? user, string? key, string? tasks, string? jobs, string reason)
    {
        var verdict = Assert.Single(MigrationRules.Classify([User(1, sshUser: user, key: key, tasks: tasks, jobs: jobs)], "slurm_ssh"));
        Assert.Equal(MigrationOutcome.Blocks, verdict.Outcome);
        Assert.Contains(verdict.Reasons, r => r.Contains(reason, StringComparison.Ordinal));
    }

    [Fact]
    public void Classify_SlurmSsh_EquivalentDirsAfterNormalizing_ShareTheProfile()
    {
        var verdicts = MigrationRules.Classify([User(1, sshUser: "x", tasks: "/t/"), User(2, sshUser: "x", tasks: "/t/sub/..")], "slurm_ssh");
        Assert.All(verdicts, v => Assert.Equal(MigrationOutcome.Migrated, v.Outcome));
    }

    [Fact]
    public void Classify_Local_ProfileIsNone() =>
        Assert.Equal("Profile None", Assert.Single(MigrationRules.Classify([User(1, slurmUser: null)], "local")).ProfileName);

    [Theory]
    [InlineData("[\"a\", \"a\"]", "duplicates")]
    [InlineData("[\"\"]", "empty name")]
    [InlineData("{}", "not a JSON list")]
    public void Classify_BadSlurmAccounts_Blocks(string accounts, string reason) =>
        Assert.Contains(reason, Assert.Single(MigrationRules.Classify([User(1, accounts: accounts)], "slurm")).Reasons[0], StringComparison.Ordinal);

    [Theory]
    [InlineData("/shared/p", null)]
    [InlineData("  /shared/p  ", null)]
    [InlineData("", "is not set")]
    [InlineData("   ", "is not set")]
    [InlineData("shared/p", "not an absolute path")]
    [InlineData("/a$b", "forbidden")]
    [InlineData("/a;b", "forbidden")]
    [InlineData("/a`b`", "forbidden")]
    [InlineData("/a b(c)", "forbidden")]
    [InlineData("/a\nb", "forbidden")]
    public void ProjectDirRule_Check_AppliesFractalsValidation(string value, string? problem)
    {
        var result = ProjectDirRule.Check(value);
        if (problem is null)
        {
            Assert.Null(result);
        }
        else
        {
            Assert.Contains(problem, result, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("/a/b/", "/a/b")]
    [InlineData("/a/./b/../c", "/a/c")]
    [InlineData("//a//b", "/a/b")]
    public void ProjectDirRule_Normalize_IsNormpath(string path, string expected) => Assert.Equal(expected, ProjectDirRule.Normalize(path));

    [Fact]
    public void ProjectDirRule_Apply_FillsPlaceholders_OrRefusesMissingValues()
    {
        var user = User(7, slurmUser: "jdoe") with { Email = "jane.doe@example.org" };
        Assert.Equal("/shared/projects/jdoe/jane.doe/7", ProjectDirRule.Apply("/shared/projects/{slurm_user}/{email_local}/{id}", user));
        Assert.Null(ProjectDirRule.Apply("/shared/{ssh_username}", user));
        Assert.Null(ProjectDirRule.Apply("/shared/{unknown}", user));
    }
}
