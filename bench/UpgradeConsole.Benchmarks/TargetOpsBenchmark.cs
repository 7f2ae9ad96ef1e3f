using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Benchmarks;

/// <summary>
/// Issue 17, item 9: one preflight and one Fractal user PATCH through the API, as a script calls them, against a
/// loopback Fractal host: the project's Fractal double (FractalHost) on a real sshd of 127.0.0.1, its database on a real
/// PostgreSQL, the dashboard on Kestrel with SQLite (the test rig, as the users benchmark uses it). Each call is timed
/// from request to the last byte of the answer, after a warm-up (the SSH connection is kept by the dashboard, as in
/// production). Goal: preflight &lt; 2 s, PATCH &lt; 300 ms. Besides wall-clock figures (which a loaded machine stretches), the
/// CPU this process spent per call, which the load does not change much; the dashboard logs only warnings meanwhile.
/// </summary>
internal static class TargetOpsBenchmark
{
    public static async Task<int> RunAsync(int rounds)
    {
        Environment.SetEnvironmentVariable("ASPNETCORE_TEST_CONTENTROOT_UPGRADECONSOLE_WEB", Path.Combine(TestPaths.RepositoryRoot, "src", "UpgradeConsole.Web"));
        // The dashboard's information lines (an audit line per call) written to this console would be part of what is timed.
        Environment.SetEnvironmentVariable("Logging__LogLevel__Default", "Warning");
        var postgres = new PostgresServer();
        var ssh = new SshServer();
        await postgres.InitializeAsync();
        await ssh.InitializeAsync();
        try
        {
            await using var app = new UpgradeConsoleApplicationFactory();
            app.ServeOverKestrel();
            var admin = await app.CreateFirstAdminAsync();
            await using var fractal = await FractalTarget.CreateAsync(app, admin, ssh, postgres);
            using var api = ApiTokens.Client(app.BaseUrl, await ApiTokens.CreateAsync(app, UpgradeConsoleApplicationFactory.AdminEmail, "bench", "Admin"));
            var id = fractal.TargetId;
            Console.WriteLine($"Fractal double 2.16 on sshd 127.0.0.1:{ssh.Port}, its database on PostgreSQL {postgres.MajorVersion}; {rounds} rounds each after 2 warm-up calls");

            // One preflight: POST /api/v1/targets/{id}/preflight (every check, over SSH and the database).
            var preflight = new List<double>();
            var cpu = TimeSpan.Zero;
            for (var i = -2; i < rounds; i++)
            {
                var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
                var clock = Stopwatch.StartNew();
                using var response = await api.PostAsync($"/api/v1/targets/{id}/preflight", null);
                var body = await response.Content.ReadAsStringAsync();
                var elapsed = clock.Elapsed.TotalMilliseconds;
                if (!response.IsSuccessStatusCode)
                {
                    throw new InvalidOperationException($"preflight: {(int)response.StatusCode} {body}");
                }

                if (i >= 0)
                {
                    preflight.Add(elapsed);
                    cpu += Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
                }
            }

            Print("preflight (POST /targets/{id}/preflight)", preflight, goal: 2000, cpu);

            // One user fix: PATCH /api/v1/targets/{id}/fractal/users/{userId} with the version read before, alternating two values.
            var list = await api.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{id}/fractal/users?filter=all");
            var user = list.GetProperty("users").EnumerateArray().First(u => u.GetProperty("settingsId").ValueKind == JsonValueKind.Number);
            var userId = user.GetProperty("id").GetInt32();
            var version = user.GetProperty("version").GetString()!;
            // A PATCH is short, so the machine's load scatters single figures: more rounds (3 × rounds, at least 30) after more
            // warm-up calls, each value different from the one before (every call changes the row).
            var patch = new List<double>();
            var patchRounds = Math.Max(30, 3 * rounds);
            cpu = TimeSpan.Zero;
            for (var i = -5; i < patchRounds; i++)
            {
                var value = (i & 1) == 0 ? "/shared/projects/bench-a" : "/shared/projects/bench-b";
                var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
                var clock = Stopwatch.StartNew();
                using var response = await api.PatchAsJsonAsync($"/api/v1/targets/{id}/fractal/users/{userId}", new { version, projectDir = value });
                var body = await response.Content.ReadAsStringAsync();
                var elapsed = clock.Elapsed.TotalMilliseconds;
                if (!response.IsSuccessStatusCode)
                {
                    throw new InvalidOperationException($"PATCH: {(int)response.StatusCode} {body}");
                }

                version = JsonDocument.Parse(body).RootElement.GetProperty("version").GetString()!;
                if (i >= 0)
                {
                    patch.Add(elapsed);
                    cpu += Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
                }
            }

            Print("user PATCH (projectDir, PATCH /targets/{id}/fractal/users/{userId})", patch, goal: 300, cpu);
            return 0;
        }
        finally
        {
            await ssh.DisposeAsync();
            await postgres.DisposeAsync();
        }
    }

    private static void Print(string what, List<double> times, double goal, TimeSpan cpu)
    {
        var count = times.Count;
        times.Sort();
        var median = times[count / 2];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{what}: median {median:0} ms, p95 {times[(int)Math.Ceiling(count * 0.95) - 1]:0} ms, min {times[0]:0} ms, max {times[^1]:0} ms (n={count}); goal < {goal:0} ms: {(median < goal ? "met" : "MISSED")}; " +
            $"CPU of this process (dashboard and client) {cpu.TotalMilliseconds / count:0} ms a call"));
    }
}
