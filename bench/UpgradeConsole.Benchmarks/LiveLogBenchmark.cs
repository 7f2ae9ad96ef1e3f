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
            // UC_BENCH_DATABASE=postgresql: a throwaway PostgreSQL 15 (binary COPY) instead of the default SQLite file.
            var onPostgres = string.Equals(Environment.GetEnvironmentVariable("UC_BENCH_DATABASE"), "postgresql", StringComparison.OrdinalIgnoreCase);
            await using var postgres = onPostgres ? new PostgresServer() : null;
            string? connection = null;
            if (postgres is not null)
            {
                await postgres.InitializeAsync();
                connection = await postgres.CreateDatabaseAsync();
            }

            await using var app = onPostgres
                ? new UpgradeConsoleApplicationFactory(UpgradeConsole.Web.Persistence.DatabaseProvider.PostgreSQL, connection)
                : new UpgradeConsoleApplicationFactory();
            app.ServeOverKestrel();
            await app.CreateFirstAdminAsync();
            var cookies = await SignInAsync(app);
            await using var remote = new RemoteSession(ssh);
            var command = Seq(lines);

            // Baseline: the same command over the same ControlMaster, output thrown away.
            var endpoint = ((OpenSshShell)remote.Shell).Endpoint;
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
            var (runId, phase) = await NewRunAsync(app);
            // Warm-up first (as any benchmark harness does): a fresh process compiles the pipeline's code
            // on first use, which a dashboard that has run anything before has done long ago.
            var (warmRun, warmPhase) = await NewRunAsync(app);
            // UC_BENCH_WARMUP=n lines (default 100,000).
            var warmLines = int.TryParse(Environment.GetEnvironmentVariable("UC_BENCH_WARMUP"), out var w) ? w : Math.Min(lines, 100_000);
            // The viewers run in a process of their own (as browsers would), so this process's memory is the dashboard's.
            using var viewers = Viewers > 0 ? ViewersProcess.Start(app.BaseUrl, warmRun, warmLines, runId, Viewers, lines) : null;
            if (viewers is not null)
            {
                await viewers.WaitForAsync("joined-warm-up");
            }

            var warmLocation = remote.Step("warm-up-" + warmRun);
            var warm = Stopwatch.StartNew();
            await remote.Engine.StartAsync(new RemoteStep { Location = warmLocation, Script = Seq(warmLines) }, CancellationToken.None);
            await RunLogPump.PumpAsync(remote.Engine, warmLocation, warmPhase, new RunLogWriter(app.Services.GetRequiredService<IServiceScopeFactory>(), warmRun, [], TimeProvider.System), null, CancellationToken.None);
            if (viewers is not null)
            {
                await viewers.WaitForAsync("joined");
            }

            warm.Stop();
            var dbBefore = onPostgres ? await PostgresBytesAsync(connection!) : DatabaseBytes(dbFile);

            var writer = new RunLogWriter(app.Services.GetRequiredService<IServiceScopeFactory>(), runId, [], TimeProvider.System);
            var location = remote.Step("bench-" + runId);
            var residentBefore = ResidentMiB("VmRSS:");
            var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
            var wall = Stopwatch.StartNew();
            await remote.Engine.StartAsync(new RemoteStep { Location = location, Script = command }, CancellationToken.None);
            await RunLogPump.PumpAsync(remote.Engine, location, phase, writer, null, CancellationToken.None);
            var stored = wall.Elapsed;
            var report = viewers is null ? [] : await viewers.WaitForAllAsync();
            wall.Stop();
            var dashboardPeak = PeakResidentMiB();
            var dashboardCpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
            var dbAfter = onPostgres ? await PostgresBytesAsync(connection!) : DatabaseBytes(dbFile);
            Console.WriteLine($"{lines} lines ({lines * 100L / 1_000_000.0:0.0} MB), {Viewers} viewers over SignalR (another process), {(onPostgres ? "PostgreSQL" : "SQLite")}; after a warm-up run of {warmLines} lines");
            Console.WriteLine($"  ssh host '<the command>' > /dev/null: {baseline.ElapsedMilliseconds} ms");
            Console.WriteLine($"  warm-up run in the fresh process ({warmLines} lines, every viewer has every line): {warm.ElapsedMilliseconds} ms");
            Console.WriteLine($"  stored in the database: {stored.TotalMilliseconds:0} ms ({lines / stored.TotalSeconds:0} lines/s); CPU used by the dashboard process meanwhile: {dashboardCpu.TotalSeconds:0.0} s (on {Environment.ProcessorCount} cores)");
            Console.WriteLine($"  every viewer has every line: {wall.ElapsedMilliseconds} ms, ratio {wall.Elapsed.TotalMilliseconds / baseline.Elapsed.TotalMilliseconds:0.00} (goal <= 1.3)");
            foreach (var line in report)
            {
                Console.WriteLine("  " + line);
            }

            Console.WriteLine($"  database growth: {(dbAfter - dbBefore) / 1_048_576.0:0.0} MiB → {(dbAfter - dbBefore) * (1_000_000.0 / lines) / 1_048_576.0:0.0} MiB per million lines");
            Console.WriteLine($"  dashboard process peak resident memory (VmHWM; viewers elsewhere): {dashboardPeak} MiB (goal < 300 MB); resident before the step {residentBefore} MiB");

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
                    if (TryLatencyMs(line.Text, out var latency))
                    {
                        lock (mine)
                        {
                            mine.Add(latency);
                        }
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
            Console.WriteLine(all.Count == 0
                ? "  latency: no viewers"
                : $"  latency emission → viewer: p50 {all[all.Count / 2]:0} ms, p99 {all[(int)(all.Count * 0.99)]:0} ms, max {all[^1]:0} ms (goal p99 ≤ 250 ms)");
            foreach (var v in rateViewers)
            {
                await v.DisposeAsync();
            }

            Console.WriteLine($"peak resident memory of this process after the latency run (dashboard + {Viewers} in-process latency viewers): {PeakResidentMiB()} MiB");
            return 0;
        }
        finally
        {
            await ssh.DisposeAsync();
        }
    }

    /// <summary>
    /// The milliseconds from a paced line's emission (its first word: the step's <c>time.time_ns()</c>) to now; false for
    /// a line that does not start so.
    /// </summary>
    internal static bool TryLatencyMs(string text, out double latency)
    {
        var space = text.IndexOf(' ', StringComparison.Ordinal);
        latency = 0;
        if (space <= 0 || !long.TryParse(text.AsSpan(0, space), NumberStyles.None, CultureInfo.InvariantCulture, out var emitted))
        {
            return false;
        }

        latency = ((TimeProvider.System.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks * 100 - emitted) / 1e6;
        return true;
    }

    /// <summary>A command printing <paramref name="lines"/> numbered 100-byte lines.</summary>
    private static string Seq(int lines) => $"seq -f '%010g {new string('x', 88)}' 1 {lines}";

    /// <summary>The process's peak resident set (VmHWM) in MiB.</summary>
    private static long PeakResidentMiB() => ResidentMiB("VmHWM:");

    private static long ResidentMiB(string field) =>
        File.ReadLines("/proc/self/status").Where(l => l.StartsWith(field, StringComparison.Ordinal))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024).First();

    /// <summary>
    /// The viewers' side, run as <c>live-log-viewers URL WARMRUN WARMLINES RUN COUNT LINES</c> in a child
    /// process: signs in, follows the warm-up run with COUNT hub connections ("joined-warm-up") to its end,
    /// then joins the run with COUNT connections, prints "joined", waits for every line, prints a report
    /// line per viewer and exits.
    /// </summary>
    public static async Task<int> ViewersAsync(string baseUrl, int warmRun, int warmLines, int runId, int count, int lines)
    {
        var cookies = await RunSeed.SignInCookiesAsync(baseUrl, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        var warm = await FollowAsync(baseUrl, cookies, warmRun, count);
        Console.WriteLine("joined-warm-up");
        foreach (var v in warm)
        {
            await v.WaitForAsync(warmLines, TimeSpan.FromMinutes(5));
            await v.DisposeAsync();
        }

        var viewers = await FollowAsync(baseUrl, cookies, runId, count);
        Console.WriteLine("joined");
        foreach (var v in viewers)
        {
            await v.WaitForAsync(lines, TimeSpan.FromMinutes(15));
        }

        foreach (var (v, i) in viewers.Select((v, i) => (v, i)))
        {
            // The follower accepts only the next sequence: Accepted == N and Last == N means 1..N, each once, in order.
            var exact = v.Accepted == lines && v.Last == lines;
            Console.WriteLine($"viewer {i + 1}: {v.Accepted} lines, in order and each once: {exact}; pushed batches {v.PushedBatches}; duplicates received {v.Duplicates}");
        }

        Console.WriteLine($"viewers' process peak resident memory: {PeakResidentMiB()} MiB; CPU used by the viewers' process: {Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds:0.0} s");
        foreach (var v in viewers)
        {
            await v.DisposeAsync();
        }

        return 0;
    }

    /// <summary><paramref name="count"/> viewers of a run that keep counts, not lines.</summary>
    private static async Task<List<RunLogFollower>> FollowAsync(string baseUrl, CookieContainer cookies, int runId, int count)
    {
        var viewers = new List<RunLogFollower>();
        for (var i = 0; i < count; i++)
        {
            var viewer = await RunLogFollower.StartAsync(baseUrl, cookies, runId);
            viewer.KeepLines = false;
            viewers.Add(viewer);
        }

        return viewers;
    }

    private sealed class ViewersProcess : IDisposable
    {
        private readonly Process _process;
        private readonly List<string> _lines = [];
        private readonly Dictionary<string, TaskCompletionSource> _markers = new()
        {
            ["joined-warm-up"] = new(TaskCreationOptions.RunContinuationsAsynchronously),
            ["joined"] = new(TaskCreationOptions.RunContinuationsAsynchronously),
        };

        private ViewersProcess(Process process)
        {
            _process = process;
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    foreach (var marker in _markers.Values)
                    {
                        marker.TrySetException(new InvalidOperationException("the viewers' process ended: " + string.Join('\n', _lines)));
                    }

                    return;
                }

                if (_markers.TryGetValue(e.Data, out var reached))
                {
                    reached.TrySetResult();
                    return;
                }

                lock (_lines)
                {
                    _lines.Add(e.Data);
                }
            };
            process.BeginOutputReadLine();
        }

        public static ViewersProcess Start(string baseUrl, int warmRun, int warmLines, int runId, int count, int lines)
        {
            var self = Environment.ProcessPath!;
            var start = new ProcessStartInfo(self) { UseShellExecute = false, RedirectStandardOutput = true };
            if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            {
                start.ArgumentList.Add(typeof(LiveLogBenchmark).Assembly.Location);
            }

            start.ArgumentList.Add("live-log-viewers");
            start.ArgumentList.Add(baseUrl);
            foreach (var n in new[] { warmRun, warmLines, runId, count, lines })
            {
                start.ArgumentList.Add(n.ToString(CultureInfo.InvariantCulture));
            }

            return new ViewersProcess(Process.Start(start)!);
        }

        public Task WaitForAsync(string marker) => _markers[marker].Task.WaitAsync(TimeSpan.FromMinutes(5));

        public async Task<List<string>> WaitForAllAsync()
        {
            await _process.WaitForExitAsync();
            _process.WaitForExit();
            if (_process.ExitCode != 0)
            {
                throw new InvalidOperationException($"the viewers' process exited with {_process.ExitCode}: {string.Join('\n', _lines)}");
            }

            lock (_lines)
            {
                return [.. _lines];
            }
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            _process.Dispose();
        }
    }

    private static async Task<long> PostgresBytesAsync(string connection)
    {
        await using var conn = new Npgsql.NpgsqlConnection(connection);
        await conn.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand("SELECT pg_total_relation_size('\"RunLogChunks\"')", conn);
        return (long)(await cmd.ExecuteScalarAsync())!;
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
