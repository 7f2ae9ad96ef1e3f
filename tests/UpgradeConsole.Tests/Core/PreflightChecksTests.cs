using UpgradeConsole.Core.Fractal;

namespace UpgradeConsole.Tests.Core;

/// <summary>Every preflight check, passing on a healthy 2.16 target and failing (or warning) for each reason it names.</summary>
public sealed class PreflightChecksTests
{
    private const string GoodSlurm = """
        {"default_slurm_config": {"partition": "main", "cpus_per_task": 1, "mem": "100M"},
         "gpu_slurm_config": {},
         "batching_config": {"target_cpus_per_job": 1, "max_cpus_per_job": 1, "target_mem_per_job": 200, "max_mem_per_job": 500, "target_num_jobs": 2, "max_num_jobs": 4}}
        """;

    private static readonly Dictionary<string, string?> GoodEnv = new()
    {
        ["FRACTAL_RUNNER_BACKEND"] = "slurm",
        ["FRACTAL_SLURM_WORKER_PYTHON"] = "/venv/bin/python",
        ["FRACTAL_TASKS_PYTHON_DEFAULT_VERSION"] = "3.11",
        ["FRACTAL_TASKS_PYTHON_3_11"] = "/usr/bin/python3.11",
        ["FRACTAL_TASKS_DIR"] = "/srv/tasks",
        ["FRACTAL_RUNNER_WORKING_BASE_DIR"] = "/srv/jobs",
        ["FRACTAL_SLURM_CONFIG_FILE"] = "slurm_config.json",
    };

    private static PreflightFacts Good(Dictionary<string, string?>? env = null) => new()
    {
        TargetId = 1,
        Env = env ?? GoodEnv,
        InstalledVersion = "2.16.6",
        AliveVersion = "2.16.6",
        ServerPython = "/venv/bin/python",
        AlembicVersion = "981d588fe248",
        Users = MigrationRules.Classify([new FractalUser { Id = 1, Email = "a@x", IsActive = true, IsVerified = true, IsSuperuser = true, SettingsId = 1, ProjectDir = "/p", SlurmUser = "a" }], (env ?? GoodEnv).GetValueOrDefault("FRACTAL_RUNNER_BACKEND")),
        SshHosts = ["login"],
        WorkerPythonExists = true,
        SlurmConfig = new RemoteFile("slurm_config.json", true, GoodSlurm),
        BackupDirectory = "/backups",
        BackupFreeBytes = 10L << 30,
        DatabaseSizeBytes = 1L << 30,
        PgDumpMajor = 15,
        ServerMajor = 15,
        StatusExitCode = 0,
        StatusOutput = "active",
    };

    private static CheckResult Check(PreflightFacts facts, string id) => Assert.Single(PreflightChecks.Evaluate(facts), c => c.Id == id);

    private static Dictionary<string, string?> Env(params (string Key, string? Value)[] changes)
    {
        var env = new Dictionary<string, string?>(GoodEnv);
        foreach (var (key, value) in changes)
        {
            if (value is null)
            {
                env.Remove(key);
            }
            else
            {
                env[key] = value;
            }
        }

        return env;
    }

    [Fact]
    public void HealthyTarget_PassesEveryCheck() =>
        Assert.All(PreflightChecks.Evaluate(Good()), c => Assert.True(c.Status == CheckStatus.Pass, $"{c.Id}: {c.Explanation}"));

    public static TheoryData<string, string, string> Failures() => new()
    {
        { "not installed", "version.installed", "pip could not say" },
        { "2.15", "version.installed", "starts from 2.16.x" },
        { "alive differs", "version.installed", "was not restarted" },
        { "old schema", "db.alembic", "not 981d588fe248" },
        { "no superuser", "users.superuser", "nobody could administer" },
        { "no settings row", "users.settings-rows", "no settings row" },
        { "no settings row", "users.blocking", "would stop update-db-data" },
        { "mismatch", "users.profile-mismatch", "Profile data mismatch" },
        { "local", "env.backend", "only for SLURM instances" },
        { "bogus backend", "env.backend", "not a 2.16 value" },
        { "worker unknown", "env.worker-python", "KeyError" },
        { "worker relative", "env.worker-python", "not an absolute path" },
        { "worker missing", "env.worker-python", "not an executable file" },
        { "no default python", "env.tasks-python", "KeyError" },
        { "python 3.13", "env.tasks-python", "reads only FRACTAL_TASKS_PYTHON_3_9 to _3_12" },
        { "no interpreter", "env.tasks-python", "FRACTAL_TASKS_PYTHON_3_11 is not set" },
        { "relative dirs", "env.dirs", "is relative" },
        { "no slurm config", "env.slurm-config", "is not set" },
        { "slurm config missing", "env.slurm-config", "does not exist" },
        { "extra_lines null", "env.slurm-config", "extra_lines is null" },
        { "exports null", "env.slurm-config", "user_local_exports is null" },
        { "batching incomplete", "env.slurm-config", "batching_config.max_num_jobs is missing" },
        { "not json", "env.slurm-config", "not valid JSON" },
        { "pixi missing", "env.pixi-config", "does not exist" },
        { "pixi bad", "env.pixi-config", "needs default_version" },
        { "ssh no hosts", "db.ssh-hosts", "IndexError" },
        { "no room", "backup.space", "twice the database size" },
        { "no pg_dump", "backup.pg_dump", "not found" },
        { "old pg_dump", "backup.pg_dump", "older than the server" },
        { "service down", "service.status", "exited with 3" },
        { "run active", "runs.active", "is active" },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public void EachProblem_FailsItsCheck_WithItsReason(string problem, string id, string reason)
    {
        var facts = problem switch
        {
            "not installed" => Good() with { InstalledVersion = null },
            "2.15" => Good() with { InstalledVersion = "2.15.9" },
            "alive differs" => Good() with { AliveVersion = "2.16.5" },
            "old schema" => Good() with { AlembicVersion = "b3ffb095f973" },
            "no superuser" => Good() with { Users = MigrationRules.Classify([new FractalUser { Id = 1, Email = "a@x", IsActive = true, IsVerified = true, SettingsId = 1, ProjectDir = "/p", SlurmUser = "a" }], "slurm") },
            "no settings row" => Good() with { Users = MigrationRules.Classify([new FractalUser { Id = 1, Email = "a@x", IsActive = true, IsVerified = true, IsSuperuser = true }], "slurm") },
            "mismatch" => Good(Env(("FRACTAL_RUNNER_BACKEND", "slurm_ssh"))) with
            {
                Users = MigrationRules.Classify(
                [
                    new FractalUser { Id = 1, Email = "a@x", IsActive = true, IsVerified = true, SettingsId = 1, ProjectDir = "/p", SshUsername = "s", SshPrivateKeyPath = "/k1", SshTasksDir = "/t", SshJobsDir = "/j" },
                    new FractalUser { Id = 2, Email = "b@x", IsActive = true, IsVerified = true, SettingsId = 2, ProjectDir = "/p", SshUsername = "s", SshPrivateKeyPath = "/k2", SshTasksDir = "/t", SshJobsDir = "/j" },
                ], "slurm_ssh"),
            },
            "local" => Good(Env(("FRACTAL_RUNNER_BACKEND", "local"))),
            "bogus backend" => Good(Env(("FRACTAL_RUNNER_BACKEND", "slurm_sudo"))),
            "worker unknown" => Good(Env(("FRACTAL_SLURM_WORKER_PYTHON", null))) with { ServerPython = null },
            "worker relative" => Good(Env(("FRACTAL_SLURM_WORKER_PYTHON", "venv/bin/python"))),
            "worker missing" => Good() with { WorkerPythonExists = false },
            "no default python" => Good(Env(("FRACTAL_TASKS_PYTHON_DEFAULT_VERSION", null))),
            "python 3.13" => Good(Env(("FRACTAL_TASKS_PYTHON_DEFAULT_VERSION", "3.13"), ("FRACTAL_TASKS_PYTHON_3_13", "/usr/bin/python3.13"))),
            "no interpreter" => Good(Env(("FRACTAL_TASKS_PYTHON_3_11", null))),
            "relative dirs" => Good(Env(("FRACTAL_TASKS_DIR", "Tasks"))),
            "no slurm config" => Good() with { SlurmConfig = null },
            "slurm config missing" => Good() with { SlurmConfig = new RemoteFile("slurm_config.json", false, null) },
            "extra_lines null" => Good() with { SlurmConfig = new RemoteFile("s.json", true, GoodSlurm.Replace("\"mem\": \"100M\"", "\"mem\": \"100M\", \"extra_lines\": null", StringComparison.Ordinal)) },
            "exports null" => Good() with { SlurmConfig = new RemoteFile("s.json", true, GoodSlurm.Replace("\"gpu_slurm_config\": {},", "\"gpu_slurm_config\": {}, \"user_local_exports\": null,", StringComparison.Ordinal)) },
            "batching incomplete" => Good() with { SlurmConfig = new RemoteFile("s.json", true, GoodSlurm.Replace(", \"max_num_jobs\": 4", "", StringComparison.Ordinal)) },
            "not json" => Good() with { SlurmConfig = new RemoteFile("s.json", true, "{ not json") },
            "pixi missing" => Good() with { PixiConfig = new RemoteFile("pixi.json", false, null) },
            "pixi bad" => Good() with { PixiConfig = new RemoteFile("pixi.json", true, "{\"default_version\": \"0.47.0\", \"versions\": {}}") },
            "ssh no hosts" => Good(Env(("FRACTAL_RUNNER_BACKEND", "slurm_ssh"))) with { SshHosts = [] },
            "no room" => Good() with { BackupFreeBytes = 1L << 30 },
            "no pg_dump" => Good() with { PgDumpMajor = null },
            "old pg_dump" => Good() with { PgDumpMajor = 13 },
            "service down" => Good() with { StatusExitCode = 3, StatusOutput = "inactive" },
            "run active" => Good() with { ActiveRun = "Run 4 (2.16 → 2.17.0)" },
            _ => throw new ArgumentException(problem),
        };

        var check = Check(facts, id);
        Assert.Equal(CheckStatus.Fail, check.Status);
        Assert.Contains(reason, check.Explanation, StringComparison.Ordinal);
    }

    [Fact]
    public void WorkerPythonMissing_ButServerPythonKnown_Warns_TheRunAddsItToTheOldCopy()
    {
        var check = Check(Good(Env(("FRACTAL_SLURM_WORKER_PYTHON", null))), "env.worker-python");
        Assert.Equal(CheckStatus.Warn, check.Status);
        Assert.Contains(".old copy", check.Explanation, StringComparison.Ordinal);
    }

    [Fact]
    public void LeftOutUsers_Warn_WithALinkToThem()
    {
        var facts = Good() with
        {
            Users = MigrationRules.Classify(
            [
                new FractalUser { Id = 1, Email = "a@x", IsActive = true, IsVerified = true, IsSuperuser = true, SettingsId = 1, ProjectDir = "/p", SlurmUser = "a" },
                new FractalUser { Id = 2, Email = "b@x", IsActive = true, IsVerified = false },
            ], "slurm"),
        };
        var check = Check(facts, "users.left-out");
        Assert.Equal(CheckStatus.Warn, check.Status);
        Assert.Equal("/targets/1/users?filter=left-out", check.FixUrl);
    }

    [Fact]
    public void AliveNotAnswering_Warns() =>
        Assert.Equal(CheckStatus.Warn, Check(Good() with { AliveVersion = null, AliveError = "connection refused" }, "version.installed").Status);

    [Fact]
    public void RecentRehearsal_NotAskedFor_Passes()
    {
        var check = Check(Good() with { CheckedAt = DateTimeOffset.UnixEpoch.AddDays(30) }, FractalCheckIds.RecentRehearsal);
        Assert.Equal(CheckStatus.Pass, check.Status);
        Assert.Contains("does not ask for one", check.Explanation, StringComparison.Ordinal);
    }

    [Fact]
    public void RecentRehearsal_AskedForAndNone_FailsWithTheWayToRehearse()
    {
        var check = Check(Good() with { RehearsalRequiredWithin = TimeSpan.FromDays(7), CheckedAt = DateTimeOffset.UnixEpoch.AddDays(30) }, FractalCheckIds.RecentRehearsal);
        Assert.Equal(CheckStatus.Fail, check.Status);
        Assert.Contains("newer than 7 days; it has none", check.Explanation, StringComparison.Ordinal);
        Assert.Equal("/targets/1/plan", check.FixUrl);
    }

    [Theory]
    [InlineData(6.9, CheckStatus.Pass)]
    [InlineData(7.0, CheckStatus.Pass)]
    [InlineData(7.1, CheckStatus.Fail)]
    public void RecentRehearsal_AskedFor_PassesOnlyWithinTheDays(double ageDays, CheckStatus expected)
    {
        var now = DateTimeOffset.UnixEpoch.AddDays(30);
        var check = Check(Good() with
        {
            RehearsalRequiredWithin = TimeSpan.FromDays(7),
            LatestPassingRehearsal = "rehearsal 12",
            LatestPassingRehearsalEndedAt = now - TimeSpan.FromDays(ageDays),
            CheckedAt = now,
        }, FractalCheckIds.RecentRehearsal);
        Assert.True(check.Status == expected, check.Explanation);
        Assert.Contains("rehearsal 12", check.Explanation, StringComparison.Ordinal);
    }
}
