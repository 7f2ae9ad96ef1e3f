using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Fractal;

/// <summary>
/// The Fractal host double behaves like fractal-2.17.md says fractalctl does: set-db migrates the
/// schema, update-db-data asks its five questions, checks everything before writing, stops with
/// exit 1 on a blocking user, and is not idempotent. Real venv, real pip, real PostgreSQL.
/// </summary>
public sealed class FractalDoubleTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private FractalTarget _fractal = default!;
    private FractalHost _new = default!;

    public async ValueTask InitializeAsync()
    {
        var admin = await _app.CreateFirstAdminAsync();
        _fractal = await FractalTarget.CreateAsync(_app, admin, ssh, postgres);
        // A second installation, of 2.17.0, working in the same directory layout against the same database.
        var env = (await ssh.RunAsync($"cat {await _fractal.Host.AbsoluteDirectoryAsync()}/.fractal_server.env")).StandardOutput;
        _new = await FractalHost.CreateAsync(_fractal.Remote.Shell, "2.17.0", env.Replace("FRACTAL_RUNNER_BACKEND=slurm\n", "FRACTAL_RUNNER_BACKEND=slurm_sudo\n", StringComparison.Ordinal));
        var workdir = await _new.AbsoluteDirectoryAsync();
        await _new.WriteFileAsync(".fractal_server.env.old", env + $"""
            FRACTAL_TASKS_DIR=/srv/fractal/tasks
            FRACTAL_RUNNER_WORKING_BASE_DIR=/srv/fractal/jobs
            FRACTAL_SLURM_CONFIG_FILE=slurm_config.json
            FRACTAL_SLURM_WORKER_PYTHON={workdir}/venv/bin/python
            FRACTAL_TASKS_PYTHON_DEFAULT_VERSION=3.11
            FRACTAL_TASKS_PYTHON_3_11=/usr/bin/python3

            """);
        await _new.WriteFileAsync("slurm_config.json", """{"default_slurm_config": {"partition": "main", "mem": "4G"}, "batching_config": {"target_cpus_per_job": 1, "max_cpus_per_job": 1, "target_mem_per_job": 200, "max_mem_per_job": 500, "target_num_jobs": 2, "max_num_jobs": 4}}""");
    }

    private async Task<(int Exit, string Output)> FractalctlAsync(FractalHost host, string args, string? stdin = null)
    {
        var result = await _fractal.Remote.Shell.RunAsync(
            $"cd {ShellWords.QuotePath(host.Directory)} && {(stdin is null ? "" : $"printf '%s' {ShellWords.Quote(stdin)} | ")}venv/bin/fractalctl {args} 2>&1; echo \"exit=$?\"",
            CancellationToken.None, TimeSpan.FromMinutes(2));
        var output = result.Output.TrimEnd();
        var exit = int.Parse(output[(output.LastIndexOf("exit=", StringComparison.Ordinal) + 5)..], System.Globalization.CultureInfo.InvariantCulture);
        return (exit, output);
    }

    private const string FiveYes = "yes\nyes\nyes\nyes\nyes\n";

    [Fact]
    public async Task UpdateDbData_On216_HasNoModule_AndExits0()
    {
        var (exit, output) = await FractalctlAsync(_fractal.Host, "update-db-data", FiveYes);
        Assert.Equal(0, exit);
        Assert.Contains("Update-db module for version 2_16_6 not found; exit.", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UpdateDbData_AnswerOtherThanYes_Exits1()
    {
        var (exit, output) = await FractalctlAsync(_new, "update-db-data", "yes\nno\n");
        Assert.Equal(1, exit);
        Assert.Contains("Answer was 'no'; exit.", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SetDb217_ThenUpdateDbData_StopsOnABlockingUser_WritingNothing_ThenMigratesOnce()
    {
        var (setDb, setDbOutput) = await FractalctlAsync(_new, "set-db");
        Assert.True(setDb == 0, setDbOutput);
        Assert.Equal("83bc2ad3ffcc", await _fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));
        Assert.Equal("/PLACEHOLDER", await _fractal.ScalarAsync<string>("SELECT project_dir FROM user_oauth WHERE id = 3"));

        // bob (active, verified, no project_dir) stops it before any write.
        var (blocked, blockedOutput) = await FractalctlAsync(_new, "update-db-data", FiveYes);
        Assert.Equal(1, blocked);
        Assert.Contains("User bob@example.org is active and verified but their user settings have project_dir=None.", blockedOutput, StringComparison.Ordinal);
        Assert.Equal(0L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM resource"));

        // Fix the blocking users as the dashboard would have before the upgrade.
        await _fractal.ExecuteAsync("""
            UPDATE user_settings SET project_dir = '/shared/projects/bob' WHERE id = 3;
            INSERT INTO user_settings (id, slurm_accounts, slurm_user, project_dir) VALUES (10, '[]', 'erin', '/shared/projects/erin/');
            UPDATE user_oauth SET user_settings_id = 10 WHERE id = 6;
            UPDATE user_settings SET slurm_user = 'frank' WHERE id = 6;
            UPDATE user_settings SET project_dir = '/shared/projects/ivan' WHERE id = 9;
            """);
        var (ok, okOutput) = await FractalctlAsync(_new, "update-db-data", FiveYes);
        Assert.True(ok == 0, okOutput);
        Assert.Contains("END - all ok.", okOutput, StringComparison.Ordinal);
        Assert.Equal("slurm_sudo", await _fractal.ScalarAsync<string>("SELECT type FROM resource WHERE name = 'Resource Name'"));
        Assert.Equal(4000L, await _fractal.ScalarAsync<long>("SELECT (jobs_runner_config->'default_slurm_config'->>'mem')::bigint FROM resource"));
        Assert.Equal("Profile labshared", await _fractal.ScalarAsync<string>("SELECT p.name FROM user_oauth u JOIN profile p ON p.id = u.profile_id WHERE u.id = 8"));
        Assert.Equal("/shared/projects/erin", await _fractal.ScalarAsync<string>("SELECT project_dir FROM user_oauth WHERE id = 6"));
        // Left out: carol (not verified) keeps no profile and the placeholder.
        Assert.Equal("/PLACEHOLDER", await _fractal.ScalarAsync<string>("SELECT project_dir FROM user_oauth WHERE id = 4"));
        Assert.Equal(0L, await _fractal.ScalarAsync<long>("SELECT count(profile_id) FROM user_oauth WHERE id IN (4, 5)"));

        // Not idempotent: a second run fails on the unique resource name and changes nothing.
        var (again, againOutput) = await FractalctlAsync(_new, "update-db-data", FiveYes);
        Assert.Equal(1, again);
        Assert.Contains("uq_resource_name", againOutput, StringComparison.Ordinal);
        Assert.Equal(1L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM resource"));

        // 2.16's code now refuses the newer schema (alembic CommandError, 255).
        var (old, oldOutput) = await FractalctlAsync(_fractal.Host, "set-db");
        Assert.Equal(255, old);
        Assert.Contains("Can't locate revision identified by '83bc2ad3ffcc'", oldOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SetDb217_WithThe216Backend_FailsValidation()
    {
        await _new.WriteFileAsync(".fractal_server.env", (await ssh.RunAsync($"cat {await _fractal.Host.AbsoluteDirectoryAsync()}/.fractal_server.env")).StandardOutput);
        var (exit, output) = await FractalctlAsync(_new, "set-db");
        Assert.Equal(1, exit);
        Assert.Contains("FRACTAL_RUNNER_BACKEND", output, StringComparison.Ordinal);
        Assert.Equal("981d588fe248", await _fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));
        var (argError, _) = await FractalctlAsync(_new, "set-db --skip-init-data");
        Assert.Equal(2, argError);
    }

    public async ValueTask DisposeAsync()
    {
        await _new.DisposeAsync();
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
