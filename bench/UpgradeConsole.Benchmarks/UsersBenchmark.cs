using System.Diagnostics;
using System.Globalization;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Benchmarks;

/// <summary>
/// Server render time of the Fractal users page with many users: a real PostgreSQL with the 2.16
/// fixture plus generated users, reached through the SSH forward of a real sshd, the dashboard on
/// Kestrel, timed from an HTTP client on the same machine (request to last byte).
/// </summary>
internal static class UsersBenchmark
{
    public static async Task<int> RunAsync(int count)
    {
        // The app factory finds the dashboard's content root through the test assembly; from here, say it.
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
            // Users 1000…: 70 % migrated, 20 % left out (not verified), 10 % blocking (no project_dir).
            var generate = $"""
                INSERT INTO user_settings (id, slurm_accounts, slurm_user, project_dir)
                    SELECT 1000 + i, '[]', 'user' || i, CASE WHEN i % 10 = 0 THEN NULL ELSE '/shared/projects/user' || i END FROM generate_series(1, {count}) i;
                INSERT INTO user_oauth (id, email, hashed_password, is_active, is_superuser, is_verified, username, user_settings_id)
                    SELECT 1000 + i, 'user' || i || '@example.org', 'x', true, false, i % 5 <> 1, 'user' || i, 1000 + i FROM generate_series(1, {count}) i;
                INSERT INTO linkusergroup (group_id, user_id) SELECT 1, 1000 + i FROM generate_series(1, {count}) i;
                """;
            await using var fractal = await FractalTarget.CreateAsync(app, admin, ssh, postgres, extraSql: generate);
            var pages = new[]
            {
                $"/targets/{fractal.TargetId}/users",
                $"/targets/{fractal.TargetId}/users?page=100",
                $"/targets/{fractal.TargetId}/users?filter=blocking&sort=email",
                $"/targets/{fractal.TargetId}/users?q=user99",
            };
            foreach (var warm in pages)
            {
                await (await admin.GetAsync(warm)).ExpectOkAsync();
            }

            Console.WriteLine($"{count + 10} users in the target's database");
            foreach (var page in pages)
            {
                var times = new List<double>();
                for (var i = 0; i < 20; i++)
                {
                    var clock = Stopwatch.StartNew();
                    var body = await (await admin.GetAsync(page)).ExpectOkAsync();
                    times.Add(clock.Elapsed.TotalMilliseconds);
                    if (!body.Contains("data-testid=\"fractal-users\"", StringComparison.Ordinal))
                    {
                        throw new InvalidOperationException("The page did not render the users table.");
                    }
                }

                times.Sort();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{page["/targets/".Length..]}: median {times[times.Count / 2]:0} ms, p95 {times[(int)(times.Count * 0.95) - 1]:0} ms, max {times[^1]:0} ms (goal < 300 ms)"));
            }

            return 0;
        }
        finally
        {
            await ssh.DisposeAsync();
            await postgres.DisposeAsync();
        }
    }
}
