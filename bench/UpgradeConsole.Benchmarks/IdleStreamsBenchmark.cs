using System.Diagnostics;
using System.Net.Http.Headers;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Benchmarks;

/// <summary>
/// Security finding 4: what idle log streams cost. A running run that prints nothing, followed by N SSE streams
/// (<c>/api/v1/runs/{id}/log/stream</c>, one API token, the per-principal cap raised for the benchmark), for S seconds;
/// the dashboard process's CPU time over the same window with no stream open is the baseline. The streams' clients run
/// in this process too (they only wait on a socket). Not a test: it prints figures.
/// </summary>
internal static class IdleStreamsBenchmark
{
    public static async Task<int> RunAsync(int streams, int seconds)
    {
        Environment.SetEnvironmentVariable("ASPNETCORE_TEST_CONTENTROOT_UPGRADECONSOLE_WEB", Path.Combine(TestPaths.RepositoryRoot, "src", "UpgradeConsole.Web"));
        await using var app = new UpgradeConsoleApplicationFactory()
            .WithSetting("UpgradeConsole:LiveConnections:MaxStreamsPerPrincipal", (streams + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
        app.ServeOverKestrel();
        await app.CreateFirstAdminAsync();
        var token = await ApiTokens.CreateAsync(app, UpgradeConsoleApplicationFactory.AdminEmail, "bench", "Admin");
        var (runId, _) = await RunSeed.AddRunningRunAsync(app.Services);

        // Settle: the app's first requests, JIT, Hangfire's start.
        using (var warm = ApiTokens.Client(app.BaseUrl, token))
        {
            for (var i = 0; i < 20; i++)
            {
                (await warm.GetAsync($"/api/v1/runs/{runId}")).EnsureSuccessStatusCode();
            }
        }

        var idle = await CpuOverAsync(TimeSpan.FromSeconds(seconds));

        using var stop = new CancellationTokenSource();
        var opened = 0;
        var clients = Enumerable.Range(0, streams).Select(_ => new HttpClient { BaseAddress = new Uri(app.BaseUrl), Timeout = Timeout.InfiniteTimeSpan }).ToList();
        var readers = clients.Select(async client =>
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await client.GetAsync($"/api/v1/runs/{runId}/log/stream", HttpCompletionOption.ResponseHeadersRead, stop.Token);
            response.EnsureSuccessStatusCode();
            Interlocked.Increment(ref opened);
            await using var body = await response.Content.ReadAsStreamAsync(stop.Token);
            var buffer = new byte[4096];
            long bytes = 0;
            try
            {
                int n;
                while ((n = await body.ReadAsync(buffer, stop.Token)) > 0)
                {
                    bytes += n;
                }
            }
            catch (OperationCanceledException)
            {
            }

            return bytes;
        }).ToList();
        var waited = Stopwatch.StartNew();
        while (Volatile.Read(ref opened) < streams && waited.Elapsed < TimeSpan.FromMinutes(1))
        {
            await Task.Delay(50);
        }

        var open = Volatile.Read(ref opened);
        var busy = await CpuOverAsync(TimeSpan.FromSeconds(seconds));
        await stop.CancelAsync();
        long[] received;
        try
        {
            received = await Task.WhenAll(readers);
        }
        catch (OperationCanceledException)
        {
            received = [];
        }

        clients.ForEach(c => c.Dispose());
        Console.WriteLine($"{open} idle log streams on one running run (no lines), {seconds} s each window, {Environment.ProcessorCount} cores:");
        Console.WriteLine($"  no stream open: {idle:0.0} % of one core");
        Console.WriteLine($"  {open} streams open: {busy:0.0} % of one core → {(busy - idle) / Math.Max(1, open):0.00} % per stream (finding 4 saw 40 streams cost 40 %)");
        Console.WriteLine($"  bytes the streams received while idle: {received.Sum()} (the opening phase events and keep-alives)");
        return open == streams ? 0 : 1;
    }

    private static async Task<double> CpuOverAsync(TimeSpan window)
    {
        var process = Process.GetCurrentProcess();
        process.Refresh();
        var before = process.TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        await Task.Delay(window);
        process.Refresh();
        return (process.TotalProcessorTime - before).TotalMilliseconds * 100 / wall.Elapsed.TotalMilliseconds;
    }
}
