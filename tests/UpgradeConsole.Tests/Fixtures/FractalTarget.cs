using Npgsql;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A complete Fractal 2.16 target for a test: its own PostgreSQL database loaded with the project's
/// 2.16 fixture, a Fractal host double on the sshd host whose env file points at that database, and
/// the target added and pinned in the dashboard through its pages.
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
        string backend = "slurm", string? extraEnv = null, string? extraSql = null, string? envOverride = null, string? serviceUser = null)
    {
        var database = "fractal_" + Guid.NewGuid().ToString("N")[..10];
        var adminConnection = await postgres.CreateDatabaseAsync(database);
        // Fractal's own database role, with the password the env file carries.
        var role = "fractal_" + Guid.NewGuid().ToString("N")[..8];
        await ExecuteAsync(adminConnection, $"CREATE ROLE {role} LOGIN PASSWORD '{DbPassword}'; ALTER DATABASE {database} OWNER TO {role}; GRANT ALL ON SCHEMA public TO {role};");
        var fractalConnection = new NpgsqlConnectionStringBuilder(adminConnection) { Username = role, Password = DbPassword }.ConnectionString;
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
        var id = await UpgradeConsoleApplicationFactory.AddTargetAsync(admin, new()
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
        });
        var pinned = await admin.HtmxPostAsync($"/targets/{id}/pin", $"/targets/{id}", new() { ["fingerprint"] = await ssh.HostKeyFingerprintAsync() });
        Assert.True(pinned.IsSuccessStatusCode, await pinned.Content.ReadAsStringAsync());
        return new FractalTarget(remote, host, fractalConnection, id);
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var conn = new NpgsqlConnection(DatabaseConnection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    public Task ExecuteAsync(string sql) => ExecuteAsync(DatabaseConnection, sql);

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
