using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Benchmarks;

/// <summary>
/// A rehearsal's overhead (issue 18) on a database of a given size: the Fractal double on a real sshd, its database
/// on a real PostgreSQL holding the double's 2.16 users plus N generated ones, or a real upstream 2.16.6 dump loaded
/// with psql; the dashboard on Kestrel; R rehearsals started with the CLI's `runs rehearse --wait`. For each, the
/// phases' own start and end times as the dashboard stored them: the rehearsed phases (pip-install, set-db,
/// update-db-data) against the overhead (dump, restore, setup, cleanup), and the comparison with the prediction.
/// Not a test: it prints figures (scripts/bench-rehearsal.sh measures a dashboard and target of your own).
/// </summary>
internal static class RehearsalBenchmark
{
    private const string Runbook = "fractal-2.16-to-2.17.0";

    public static async Task<int> RunAsync(int users, int rounds, string? dump)
    {
        Environment.SetEnvironmentVariable("ASPNETCORE_TEST_CONTENTROOT_UPGRADECONSOLE_WEB", Path.Combine(TestPaths.RepositoryRoot, "src", "UpgradeConsole.Web"));
        var postgres = new PostgresServer();
        var ssh = new SshServer();
        await postgres.InitializeAsync();
        await ssh.InitializeAsync();
        try
        {
            await using var app = new UpgradeConsoleApplicationFactory();
            app.ServeOverKestrel();
            var admin = await app.CreateFirstAdminAsync();
            await app.CreateUserAsync(admin, "olivia@example.org", "Operator");
            var token = await ApiTokens.CreateAsync(app, "olivia@example.org", "rehearsal benchmark", "Operator");
            await using var fractal = await FractalTarget.CreateAsync(app, admin, ssh, postgres, extraSql: dump is null ? GeneratedUsers.Sql(users, blocking: false) : null);
            var role = new NpgsqlConnectionStringBuilder(fractal.DatabaseConnection).Username!;
            if (dump is not null)
            {
                await LoadDumpAsync(fractal.DatabaseConnection, dump);
            }

            await fractal.PrepareForUpgradeAsync(ssh);
            await using (var conn = new NpgsqlConnection(postgres.AdminConnectionString))
            {
                await conn.OpenAsync();
                await using var grant = new NpgsqlCommand($"ALTER ROLE \"{role}\" CREATEDB", conn);
                await grant.ExecuteNonQueryAsync();
            }

            var (count, size) = await DatabaseAsync(fractal.DatabaseConnection);
            Console.WriteLine(dump is null
                ? $"Fractal double, database with {count} users ({size}); {rounds} rehearsal(s) of {Runbook}; {Environment.ProcessorCount} cores"
                : $"Fractal double, database loaded from {Path.GetFileName(dump)}: {count} users ({size}); {rounds} rehearsal(s) of {Runbook}; {Environment.ProcessorCount} cores");
            using var api = ApiTokens.Client(app.BaseUrl, token);
            var rows = new List<(double Inner, double Overhead)>();
            for (var i = 0; i < rounds; i++)
            {
                var cli = await DashboardCli.RunAsync(app.BaseUrl, token, ["runs", "rehearse", "--target", fractal.TargetId.ToString(CultureInfo.InvariantCulture), "--runbook", Runbook, "--wait"], TimeSpan.FromMinutes(20));
                var compare = cli.StandardOutput.Split('\n').Where(l => l.Contains("[compare]", StringComparison.Ordinal)).Select(l => l.Trim());
                var runs = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={fractal.TargetId}");
                var id = runs.EnumerateArray().Max(r => r.GetProperty("id").GetInt32());
                var run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{id}");
                var seconds = run.GetProperty("phases").EnumerateArray()
                    .Where(p => p.GetProperty("startedAt").ValueKind == JsonValueKind.String && p.GetProperty("endedAt").ValueKind == JsonValueKind.String)
                    .ToDictionary(p => p.GetProperty("key").GetString()!, p => (p.GetProperty("endedAt").GetDateTimeOffset() - p.GetProperty("startedAt").GetDateTimeOffset()).TotalSeconds);
                var inner = seconds.Where(p => !p.Key.StartsWith("rehearsal-", StringComparison.Ordinal)).Sum(p => p.Value);
                var overhead = seconds.Where(p => p.Key.StartsWith("rehearsal-", StringComparison.Ordinal) && p.Key != "rehearsal-compare").Sum(p => p.Value);
                rows.Add((inner, overhead));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"rehearsal {id} {run.GetProperty("state").GetString()} (CLI exit {cli.ExitCode}): rehearsed phases {inner:0.0} s, overhead {overhead:0.0} s ({overhead / Math.Max(inner, 0.001):0.00}×); {string.Join(' ', seconds.Select(p => $"{p.Key}={p.Value:0.0}"))}"));
                foreach (var line in compare)
                {
                    Console.WriteLine("  " + line);
                }

                if (cli.ExitCode != 0)
                {
                    Console.WriteLine("  the CLI's last lines:\n    " + string.Join("\n    ", cli.Combined.TrimEnd().Split('\n').TakeLast(12)));
                }
            }

            rows.Sort((a, b) => a.Overhead.CompareTo(b.Overhead));
            var median = rows[rows.Count / 2];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"median by overhead: rehearsed phases {median.Inner:0.0} s, overhead (dump + restore + setup + cleanup) {median.Overhead:0.0} s"));
            return 0;
        }
        finally
        {
            await ssh.DisposeAsync();
            await postgres.DisposeAsync();
        }
    }

    /// <summary>
    /// Replaces the double's tables with an upstream dump, loaded by psql as Fractal's own role (the dump's
    /// COPY blocks need psql; its ALTER … OWNER TO lines name upstream's role and are refused, which leaves the
    /// tables with the role that made them).
    /// </summary>
    private static async Task LoadDumpAsync(string connection, string dump)
    {
        await using (var conn = new NpgsqlConnection(connection))
        {
            await conn.OpenAsync();
            await using var drop = new NpgsqlCommand("DROP SCHEMA public CASCADE; CREATE SCHEMA public", conn);
            await drop.ExecuteNonQueryAsync();
        }

        var c = new NpgsqlConnectionStringBuilder(connection);
        var loaded = await ProcessRunner.RunAsync("psql", ["-q", "-h", c.Host!, "-p", c.Port.ToString(CultureInfo.InvariantCulture), "-U", c.Username!, "-d", c.Database!, "-f", dump],
            environment: new Dictionary<string, string?> { ["PGPASSWORD"] = c.Password }, timeout: TimeSpan.FromMinutes(10), check: false);
        var errors = loaded.StandardError.Split('\n').Where(l => l.Contains("ERROR", StringComparison.Ordinal) && !l.Contains("role \"", StringComparison.Ordinal)).ToList();
        if (errors.Count > 0)
        {
            throw new InvalidOperationException("psql could not load " + dump + ":\n" + string.Join('\n', errors));
        }
    }

    private static async Task<(long Users, string Size)> DatabaseAsync(string connection)
    {
        await using var conn = new NpgsqlConnection(connection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT (SELECT count(*) FROM user_oauth), pg_size_pretty(pg_database_size(current_database()))", conn);
        await using var reader = await cmd.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetString(1));
    }
}

/// <summary>
/// Users 1000… added to the double's 2.16 users: 70 % migrated, 20 % left out (not verified), 10 % blocking (no
/// project_dir); without blocking users, those 10 % have a project_dir too (an upgrade that can pass).
/// </summary>
internal static class GeneratedUsers
{
    public static string Sql(int count, bool blocking = true) => $"""
        INSERT INTO user_settings (id, slurm_accounts, slurm_user, project_dir)
            SELECT 1000 + i, '[]', 'user' || i, CASE WHEN {(blocking ? "i % 10 = 0" : "false")} THEN NULL ELSE '/shared/projects/user' || i END FROM generate_series(1, {count}) i;
        INSERT INTO user_oauth (id, email, hashed_password, is_active, is_superuser, is_verified, username, user_settings_id)
            SELECT 1000 + i, 'user' || i || '@example.org', 'x', true, false, i % 5 <> 1, 'user' || i, 1000 + i FROM generate_series(1, {count}) i;
        INSERT INTO linkusergroup (group_id, user_id) SELECT 1, 1000 + i FROM generate_series(1, {count}) i;
        """;
}
