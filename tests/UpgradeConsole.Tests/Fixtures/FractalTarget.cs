using Npgsql;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A complete Fractal 2.16 target for a test: its own PostgreSQL database loaded with the project's
/// 2.16 fixture, a Fractal host double on the sshd host whose env file points at that database, and
/// the target added and pinned in the dashboard through the targets page's service.
/// </summary>
public sealed class FractalTarget : IAsyncDisposable
{
    public const string DbPassword = "fractal-db-Secret9";

    private FractalTarget(RemoteSession remote, FractalHost host, string databaseConnection, int targetId)
    {
        Remote = remote;
        Host = host;
        DatabaseConnection = databaseConnection;
        TargetId = targetId;
    }

    public RemoteSession Remote { get; }

    public FractalHost Host { get; }

    /// <summary>Direct connection to the target's database, for checking what fixes wrote.</summary>
    public string DatabaseConnection { get; }

    public int TargetId { get; }

    public static async Task<FractalTarget> CreateAsync(UpgradeConsoleApplicationFactory app, HttpClient admin, SshServer ssh, PostgresServer postgres,
        string backend = "slurm", string? extraEnv = null, string? extraSql = null, string? envOverride = null, string? serviceUser = null, bool addTarget = true)
    {
        var database = "fractal_" + Guid.NewGuid().ToString("N")[..10];
        var adminConnection = await postgres.CreateDatabaseAsync(database);
        // Fractal's own database role, with the password the env file carries.
        var role = "fractal_" + Guid.NewGuid().ToString("N")[..8];
        await ExecuteAsync(adminConnection, $"CREATE ROLE {role} LOGIN PASSWORD '{DbPassword}'; ALTER DATABASE {database} OWNER TO {role}; GRANT ALL ON SCHEMA public TO {role};");
        var fractalConnection = new NpgsqlConnectionStringBuilder(adminConnection) { Username = role, Password = DbPassword, Pooling = false }.ConnectionString;
        foreach (var file in new[] { "fractal-2.16-schema.sql", "fractal-2.16-users.sql" })
        {
            await ExecuteAsync(fractalConnection, await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "Fractal", file)));
        }

        if (extraSql is not null)
        {
            await ExecuteAsync(fractalConnection, extraSql);
        }

        var remote = new RemoteSession(ssh);
        var env = envOverride ?? $"""
            JWT_SECRET_KEY=jwt-secret-for-tests
            FRACTAL_RUNNER_BACKEND={backend}
            POSTGRES_HOST=127.0.0.1
            POSTGRES_PORT={postgres.Port}
            POSTGRES_USER={role}
            POSTGRES_PASSWORD={DbPassword}
            POSTGRES_DB={database}
            {extraEnv}
            """;
        var host = await FractalHost.CreateAsync(remote.Shell, "2.16.6", env);
        var workdir = await host.AbsoluteDirectoryAsync();
        if (!addTarget)
        {
            // The host and its database only: the test adds the target its own way (a script through the CLI).
            return new FractalTarget(remote, host, fractalConnection, 0);
        }

        var id = await app.AddTargetAsync(new()
        {
            ["Name"] = "fractal-" + database,
            ["Host"] = ssh.Host,
            ["Port"] = ssh.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["SshUser"] = ssh.User,
            ["PrivateKey"] = ssh.ClientKey,
            ["WorkingDirectory"] = host.Directory,
            ["PythonPath"] = host.Python,
            ["ServerUrl"] = host.ServerUrl,
            ["StopCommand"] = host.StopCommand,
            ["StartCommand"] = host.StartCommand,
            ["StatusCommand"] = host.StatusCommand,
            ["ServiceUser"] = serviceUser ?? "",
            // No PyPI here: pip installs the double's wheels from the host's own directory.
            ["PipOptions"] = $"--no-index --find-links {workdir}/wheels",
        });
        await app.PinHostKeyAsync(id, await ssh.HostKeyFingerprintAsync());
        return new FractalTarget(remote, host, fractalConnection, id);
    }

    /// <summary>
    /// Makes the target ready for the 2.16 → 2.17.0 upgrade, as an admin would have with the users
    /// page: a complete env file, the SLURM JSON, every blocking or left-out user fixed, and the
    /// 2.17.0 wheel available to pip.
    /// </summary>
    public async Task PrepareForUpgradeAsync(SshServer ssh)
    {
        await PrepareHostForUpgradeAsync(ssh);
        await ExecuteAsync("""
            INSERT INTO user_settings (id, slurm_accounts, slurm_user, project_dir) VALUES (10, '[]', 'erin', '/shared/projects/erin');
            UPDATE user_oauth SET user_settings_id = 10 WHERE id = 6;
            UPDATE user_settings SET project_dir = '/shared/projects/bob' WHERE id = 3;
            UPDATE user_settings SET slurm_user = 'frank' WHERE id = 6;
            UPDATE user_settings SET project_dir = '/shared/projects/ivan' WHERE id = 9;
            UPDATE user_settings SET slurm_user = 'carol', project_dir = '/shared/projects/carol' WHERE id = 4;
            UPDATE user_oauth SET is_active = true, is_verified = true WHERE id IN (4, 5);
            """);
    }

    /// <summary>
    /// The host's part of <see cref="PrepareForUpgradeAsync"/> (what the facility's admin does on the host, outside the dashboard):
    /// a complete env file, the SLURM JSON and the 2.17.0 wheel for pip; the users are left as they are.
    /// </summary>
    public async Task PrepareHostForUpgradeAsync(SshServer ssh)
    {
        var workdir = await Host.AbsoluteDirectoryAsync();
        var env = (await ssh.RunAsync($"cat {workdir}/.fractal_server.env")).StandardOutput;
        await Host.WriteFileAsync(".fractal_server.env", env + $"""

            FRACTAL_TASKS_DIR=/srv/fractal/tasks
            FRACTAL_RUNNER_WORKING_BASE_DIR=/srv/fractal/jobs
            FRACTAL_SLURM_CONFIG_FILE=slurm_config.json
            FRACTAL_TASKS_PYTHON_DEFAULT_VERSION="3.11"
            FRACTAL_TASKS_PYTHON_3_11=/usr/bin/python3
            FRACTAL_VIEWER_AUTHORIZATION_SCHEME=viewer-paths

            """);
        await Host.WriteFileAsync("slurm_config.json", """
            {"default_slurm_config": {"partition": "main", "cpus_per_task": 1, "mem": "100M", "extra_lines": []},
             "gpu_slurm_config": {},
             "batching_config": {"target_cpus_per_job": 1, "max_cpus_per_job": 1, "target_mem_per_job": 200, "max_mem_per_job": 500, "target_num_jobs": 2, "max_num_jobs": 4}}
            """);
        await Host.BuildWheelAsync("2.17.0");
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var conn = new NpgsqlConnection(DatabaseConnection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    public Task ExecuteAsync(string sql) => ExecuteAsync(DatabaseConnection, sql);

    /// <summary>
    /// <c>pg_dump --data-only</c> of the user tables (users, settings, groups, memberships), without the
    /// lines that differ between two dumps of the same data (comments, the random <c>\restrict</c> key).
    /// </summary>
    public async Task<string> DumpUserTablesAsync()
    {
        var c = new NpgsqlConnectionStringBuilder(DatabaseConnection);
        var result = await ProcessRunner.RunAsync("pg_dump",
            ["--data-only", "--no-owner", "-h", c.Host!, "-p", c.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", c.Username!,
             "-t", "user_oauth", "-t", "user_settings", "-t", "usergroup", "-t", "linkusergroup", c.Database!],
            environment: new Dictionary<string, string?> { ["PGPASSWORD"] = c.Password });
        return string.Join('\n', result.StandardOutput.Split('\n')
            .Where(l => !l.StartsWith("--", StringComparison.Ordinal) && !l.StartsWith("\\restrict", StringComparison.Ordinal) && !l.StartsWith("\\unrestrict", StringComparison.Ordinal)));
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await Host.DisposeAsync();
        await Remote.DisposeAsync();
    }
}
