using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Benchmarks;

/// <summary>
/// The live log pipeline end to end: a step on a real sshd prints N lines; the dashboard follows it,
/// stores the lines (SQLite by default) and pushes them over SignalR to 5 viewers; then a steady
/// 2,000 lines/s step measures emission-to-receipt latency. Not a test: it prints figures.
/// </summary>
internal static class LiveLogBenchmark
{
    private static readonly int Viewers = int.TryParse(Environment.GetEnvironmentVariable("UC_BENCH_VIEWERS"), out var v) ? v : 5;

    public static async Task<int> RunAsync(int lines, int rateSeconds)
    {
        Environment.SetEnvironmentVariable("ASPNETCORE_TEST_CONTENTROOT_UPGRADECONSOLE_WEB", Path.Combine(TestPaths.RepositoryRoot, "src", "UpgradeConsole.Web"));
        var ssh = new SshServer();
        await ssh.InitializeAsync();
        try
        {
            await using var app = new UpgradeConsoleApplicationFactory();
            app.ServeOverKestrel();
            await app.CreateFirstAdminAsync();
            var cookies = await SignInAsync(app);
            await using var remote = new RemoteSession(ssh);
            var command = $"seq -f '%010g {new string('x', 88)}' 1 {lines}";

            // Baseline: the same command over the same ControlMaster, output thrown away.
            var endpoint = remote.Shell.Endpoint;
            await remote.Shell.RunAsync("true", CancellationToken.None);
            var baseline = Stopwatch.StartNew();
            var plain = new ProcessStartInfo("ssh") { UseShellExecute = false, RedirectStandardOutput = true };
            foreach (var a in endpoint.Options().Concat(["--", endpoint.Destination, command]))
            {
                plain.ArgumentList.Add(a);
            }

            using (var process = Process.Start(plain)!)
            {
                await process.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
                await process.WaitForExitAsync();
            }

            baseline.Stop();

            var dbFile = Path.Combine(app.DataDirectory, "upgradeconsole.db");
            var dbBefore = DatabaseBytes(dbFile);
            var (runId, phase) = await NewRunAsync(app);
            var viewers = new List<RunLogFollower>();
            for (var i = 0; i < Viewers; i++)
            {
                var viewer = await RunLogFollower.StartAsync(app.BaseUrl, cookies, runId);
                viewer.KeepLines = false;
                viewers.Add(viewer);
            }

            var writer = new RunLogWriter(app.Services.GetRequiredService<IServiceScopeFactory>(), runId, [], TimeProvider.System);
            var location = remote.Step("bench-" + runId);
            var wall = Stopwatch.StartNew();
            await remote.Engine.StartAsync(new RemoteStep { Location = location, Script = command }, CancellationToken.None);
            await RunLogPump.PumpAsync(remote.Engine, location, phase, writer, null, CancellationToken.None);
            var stored = wall.Elapsed;
            foreach (var v in viewers)
            {
                await v.WaitForAsync(lines, TimeSpan.FromMinutes(10));
            }

            wall.Stop();
            GC.Collect();
            var dbAfter = DatabaseBytes(dbFile);
            Console.WriteLine($"{lines} lines ({lines * 100L / 1_000_000.0:0.0} MB), {Viewers} viewers over SignalR, SQLite");
            Console.WriteLine($"  ssh host '<the command>' > /dev/null: {baseline.ElapsedMilliseconds} ms");
            Console.WriteLine($"  stored in the database: {stored.TotalMilliseconds:0} ms");
            Console.WriteLine($"  every viewer has every line: {wall.ElapsedMilliseconds} ms, ratio {wall.Elapsed.TotalMilliseconds / baseline.Elapsed.TotalMilliseconds:0.00} (goal <= 1.3)");
            foreach (var (v, i) in viewers.Select((v, i) => (v, i)))
            {
                // The follower accepts only the next sequence: Accepted == N and Last == N means 1..N, each once, in order.
                var exact = v.Accepted == lines && v.Last == lines;
                Console.WriteLine($"  viewer {i + 1}: {v.Accepted} lines, in order and each once: {exact}; pushed batches {v.PushedBatches}; duplicates received {v.Duplicates}");
            }

            Console.WriteLine($"  database growth: {(dbAfter - dbBefore) / 1_048_576.0:0.0} MiB → {(dbAfter - dbBefore) * (1_000_000.0 / lines) / 1_048_576.0:0.0} MiB per million lines");
            foreach (var v in viewers)
            {
                await v.DisposeAsync();
            }

            // Latency at a steady rate: each line carries its emission time (ns since the epoch, same clock).
            var (rateRun, ratePhase) = await NewRunAsync(app);
            var rate = 2000;
            var total = rate * rateSeconds;
            var latencies = new List<double>[Viewers];
            var rateViewers = new List<RunLogFollower>();
            for (var i = 0; i < Viewers; i++)
            {
                var mine = latencies[i] = new List<double>(total);
                var follower = await RunLogFollower.StartAsync(app.BaseUrl, cookies, rateRun);
                follower.KeepLines = false;
                follower.Received = line =>
                {
                    var emitted = long.Parse(line.Text.AsSpan(0, line.Text.IndexOf(' ')), CultureInfo.InvariantCulture);
                    var now = (TimeProvider.System.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks * 100;
                    lock (mine)
                    {
                        mine.Add((now - emitted) / 1e6);
                    }
                };
                rateViewers.Add(follower);
            }

            var paced = $"python3 -c \"import time\nstart=time.time()\nfor i in range({total}):\n  t=start+i/{rate}\n  d=t-time.time()\n  d>0 and time.sleep(d)\n  print(time.time_ns(), i, flush=True)\"";
            var rateWriter = new RunLogWriter(app.Services.GetRequiredService<IServiceScopeFactory>(), rateRun, [], TimeProvider.System);
            var rateLocation = remote.Step("rate-" + rateRun);
            await remote.Engine.StartAsync(new RemoteStep { Location = rateLocation, Script = paced }, CancellationToken.None);
            await RunLogPump.PumpAsync(remote.Engine, rateLocation, ratePhase, rateWriter, null, CancellationToken.None);
            foreach (var v in rateViewers)
            {
                await v.WaitForAsync(total, TimeSpan.FromMinutes(5));
            }

            var all = latencies.SelectMany(l => l).Order().ToList();
            Console.WriteLine($"steady {rate} lines/s for {rateSeconds} s, {Viewers} viewers: {all.Count} receipts");
            Console.WriteLine($"  latency emission → viewer: p50 {all[all.Count / 2]:0} ms, p99 {all[(int)(all.Count * 0.99)]:0} ms, max {all[^1]:0} ms (goal p99 ≤ 250 ms)");
            foreach (var v in rateViewers)
            {
                await v.DisposeAsync();
            }

            using var self = Process.GetCurrentProcess();
            Console.WriteLine($"peak working set of this process (dashboard + sshd client + 5 viewers): {self.PeakWorkingSet64 / 1_048_576} MiB (goal for the dashboard < 300 MB)");
            return 0;
        }
        finally
        {
            await ssh.DisposeAsync();
        }
    }

    private static long DatabaseBytes(string file) =>
        new[] { file, file + "-wal" }.Where(File.Exists).Sum(f => new FileInfo(f).Length);

    private static Task<CookieContainer> SignInAsync(UpgradeConsoleApplicationFactory app) =>
        RunSeed.SignInCookiesAsync(app.BaseUrl, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);

    private static async Task<(int RunId, RunPhase Phase)> NewRunAsync(UpgradeConsoleApplicationFactory app)
    {
        var (runId, phases) = await RunSeed.AddRunningRunAsync(app.Services);
        return (runId, phases[0]);
    }
}
