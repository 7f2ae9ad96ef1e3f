using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Benchmarks;

/// <summary>
/// Server memory per open circuit (issue 13): 1, 10 and 25 tabs of Debian's Chromium on the run page of a
/// running run, first idle, then following a live log of 2,000 lines/s from a paced step on a real sshd
/// (stored by the run's log writer, pushed over the log hub, drawn by js/run-log.js). The dashboard runs in
/// this process (Kestrel, SQLite), Chromium and Playwright's driver in their own, so this process's memory is
/// the server's: the managed heap after a full collection and the resident set, before the tabs open, with
/// them open and idle, and after the live log. The log latency is measured inside each tab: the line's
/// emission time (printed by the step, same clock) to the frame after it was added to the page.
/// Not a test: it prints figures (goals: &lt; 5 MB per idle tab, p99 latency ≤ 250 ms).
/// </summary>
internal static class CircuitsBenchmark
{
    // Collects, in the page, the milliseconds from each line's emission to the frame after it is shown.
    private const string Observe = """
        () => {
            window.__ucLatencies = [];
            window.__ucEmitted = [];
            window.__ucAppends = 0;
            const view = document.getElementById('log-lines');
            new MutationObserver(records => {
                const emitted = [];
                for (const r of records) {
                    for (const n of r.addedNodes) {
                        // js/run-log.js draws the lines in view (in the view's shadow root), a line at a time.
                        const text = n.querySelector ? n.querySelector('.uc-log-text') : null;
                        const m = text ? /^(\d{13})\d{6} \d+$/.exec(text.textContent) : null;
                        if (m) { emitted.push(parseInt(m[1], 10)); }
                    }
                }
                if (emitted.length) {
                    window.__ucAppends++;
                    requestAnimationFrame(() => { const now = Date.now(); for (const e of emitted) { window.__ucLatencies.push(now - e); window.__ucEmitted.push(e); } });
                }
            }).observe(view.shadowRoot.querySelector('.uc-log-window'), { childList: true });
        }
        """;

    // niceTabs: Chromium runs at nice 10 once the tabs are open. The tabs stand for viewers on machines of their own, so
    // the dashboard and the step get the CPU first, as on a host of their own; the hub's delivery then measures the
    // server, and the latency in the tabs what is left for the browsers.
    public static async Task<int> RunAsync(int[] tabCounts, int seconds, bool trace = false, bool niceTabs = false)
    {
        Environment.SetEnvironmentVariable("ASPNETCORE_TEST_CONTENTROOT_UPGRADECONSOLE_WEB", Path.Combine(TestPaths.RepositoryRoot, "src", "UpgradeConsole.Web"));
        var ssh = new SshServer();
        var chromium = new Chromium();
        await ssh.InitializeAsync();
        await chromium.InitializeAsync();
        try
        {
            await using var app = new UpgradeConsoleApplicationFactory();
            app.ServeOverKestrel();
            await app.CreateFirstAdminAsync();
            await using var remote = new RemoteSession(ssh);
            await remote.Shell.RunAsync("true", CancellationToken.None);
            await using var browser = await chromium.NewSessionAsync(app.BaseUrl);
            await Accounts.SignInAsync(browser.Page);

            // Warm-up: one tab through a short live log, so the code paths are compiled before anything is counted.
            var signedIn = await browser.Context.StorageStateAsync();
            await MeasureAsync(app, remote, chromium.Browser, signedIn, 1, 2, print: false);
            Console.WriteLine($"Run page tabs in one Chromium{(niceTabs ? " at nice 10" : "")}, each in a window of its own, SQLite, Release; live log 2,000 lines/s for {seconds} s per row; {Environment.ProcessorCount} cores (shared with other work: figures under load)");
            foreach (var tabs in tabCounts)
            {
                await MeasureAsync(app, remote, chromium.Browser, signedIn, tabs, seconds, print: true, trace ? chromium.Browser : null, niceTabs);
            }

            return 0;
        }
        finally
        {
            await chromium.DisposeAsync();
            await ssh.DisposeAsync();
        }
    }

    // traceWith: when set, the live part runs under a DevTools trace, and the tab's main-thread time is printed by
    // event (the latencies are then measured under tracing too).
    // Each tab is the front page of a window (a browser context) of its own, signed in as the same person, as a
    // viewer's tab is on their screen: Chromium throttles the frames of a window's tabs behind its front one (measured:
    // up to ~1 s from a line's arrival to the next frame in 9 of 10 tabs opened in one window).
    private static async Task MeasureAsync(UpgradeConsoleApplicationFactory app, RemoteSession remote, IBrowser browser, string signedIn, int tabs, int seconds, bool print, IBrowser? traceWith = null, bool niceTabs = false)
    {
        var (runId, phases) = await RunSeed.AddRunningRunAsync(app.Services, TimeProvider.System.GetUtcNow());
        var writer = new RunLogWriter(app.Services.GetRequiredService<IServiceScopeFactory>(), runId, [], TimeProvider.System);
        for (var i = 1; i <= 10; i++)
        {
            await writer.WriteAsync(phases[0], $"seed line {i}");
        }

        await writer.FlushAsync();

        var (heapBefore, rssBefore) = Memory();
        var pages = new List<IPage>();
        for (var i = 0; i < tabs; i++)
        {
            var context = await browser.NewContextAsync(new() { BaseURL = app.BaseUrl, StorageState = signedIn });
            var page = await context.NewPageAsync();
            await page.GotoAsync($"/runs/{runId}");
            await page.WaitForInteractiveAsync();
            await page.Locator("#L10").WaitForAsync();
            await page.EvaluateAsync(Observe);
            pages.Add(page);
        }

        if (niceTabs)
        {
            Renice(10);
        }

        var (heapIdle, rssIdle) = Memory();
        if (print)
        {
            // Printed at once: the idle figures stand even if the live part does not finish on a loaded machine.
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{tabs} tab(s) idle: managed heap {heapBefore:0.0} → {heapIdle:0.0} MiB ({(heapIdle - heapBefore) / tabs:0.00} MiB per tab); resident set {rssBefore:0} → {rssIdle:0} MiB ({(rssIdle - rssBefore) / tabs:0.00} MiB per tab)"));
        }

        var rate = 2000;
        var total = rate * seconds;
        var paced = $"python3 -c \"import time\nstart=time.time()\nfor i in range({total}):\n  t=start+i/{rate}\n  d=t-time.time()\n  d>0 and time.sleep(d)\n  print(time.time_ns(), i, flush=True)\"";
        var location = remote.Step("circuits-" + runId);
        // The live-log benchmark's measure beside the tabs: a .NET viewer on the hub (in this process), emission → receipt.
        var cookies = await RunSeed.SignInCookiesAsync(app.BaseUrl, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        var hubLatencies = new List<double>();
        await using var hubViewer = await RunLogFollower.StartAsync(app.BaseUrl, cookies, runId);
        hubViewer.KeepLines = false;
        hubViewer.Received = line =>
        {
            // The seed lines ("seed line 1") carry no emission time.
            if (LiveLogBenchmark.TryLatencyMs(line.Text, out var latency))
            {
                lock (hubLatencies)
                {
                    hubLatencies.Add(latency);
                }
            }
        };
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var paused = 0;
        string last = "";
        async Task LiveAsync()
        {
            await remote.Engine.StartAsync(new UpgradeConsole.Core.Remote.RemoteStep { Location = location, Script = paced }, CancellationToken.None);
            await RunLogPump.PumpAsync(remote.Engine, location, phases[0], writer, null, CancellationToken.None);
            await writer.FlushAsync();
            long lastSequence;
            await using (var scope = app.Services.CreateAsyncScope())
            {
                lastSequence = await RunLogHub.LastSequenceAsync(scope.ServiceProvider.GetRequiredService<UpgradeConsole.Web.Persistence.AppDbContext>(), runId, CancellationToken.None);
            }

            last = lastSequence.ToString(CultureInfo.InvariantCulture);
            await hubViewer.WaitForAsync(lastSequence, TimeSpan.FromMinutes(5));
            // Every tab shows the last line, or has stopped following (js/run-log.js pauses a view that is not at its
            // bottom when lines arrive, e.g. when the page cannot keep up): counted, not waited for.
            foreach (var page in pages)
            {
                await page.Locator($"#L{last}, #log-follow:not(:checked)").First.WaitForAsync(new() { State = WaitForSelectorState.Attached, Timeout = 300_000 });
                paused += await page.Locator($"#L{last}").CountAsync() == 0 ? 1 : 0;
            }
        }

        await (traceWith is null ? LiveAsync() : RendererTrace.PrintAsync(traceWith, $"{tabs} tab(s) following the live log", LiveAsync));

        cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        var peakRss = PeakResidentMiB();
        var latencies = new List<double>();
        var timed = new List<(double Emitted, double Latency)>();
        var perTab = new List<double>();
        var shortest = int.MaxValue;
        var appends = 0;
        foreach (var page in pages)
        {
            appends += await page.EvaluateAsync<int>("() => window.__ucAppends");
            var mine = await page.EvaluateAsync<double[]>("() => window.__ucLatencies");
            var emitted = await page.EvaluateAsync<double[]>("() => window.__ucEmitted");
            shortest = Math.Min(shortest, mine.Length);
            latencies.AddRange(mine);
            timed.AddRange(emitted.Zip(mine));
            perTab.Add(P(mine.Order().ToList(), 0.50));
        }

        var (heapLive, rssLive) = Memory();
        foreach (var page in pages)
        {
            await page.CloseAsync(new() { RunBeforeUnload = true });
            await page.Context.CloseAsync();
        }

        if (!print)
        {
            return;
        }

        latencies.Sort();
        hubLatencies.Sort();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""
            {tabs} tab(s): managed heap {heapBefore:0.0} → {heapIdle:0.0} MiB idle ({(heapIdle - heapBefore) / tabs:0.00} MiB per tab) → {heapLive:0.0} MiB after the live log ({(heapLive - heapBefore) / tabs:0.00} MiB per tab)
              resident set {rssBefore:0} → {rssIdle:0} MiB idle ({(rssIdle - rssBefore) / tabs:0.00} MiB per tab) → {rssLive:0} MiB after the live log; peak (VmHWM, whole run so far) {peakRss} MiB
              live log: {total} lines at {rate}/s, {tabs - paused} of {tabs} tab(s) showed the last line ({paused} stopped following); {latencies.Count} receipts (fewest in one tab {shortest}); latency emission → frame p50 {P(latencies, 0.50):0} ms, p90 {P(latencies, 0.90):0} ms, p95 {P(latencies, 0.95):0} ms, p99 {P(latencies, 0.99):0} ms, max {(latencies.Count > 0 ? latencies[^1] : 0):0} ms (goal p99 ≤ 250 ms); {appends / (double)tabs:0} appends per tab ({latencies.Count / (double)Math.Max(1, appends):0.0} lines each); dashboard CPU {cpu.TotalSeconds:0.0} s
              the hub's delivery beside the tabs (a .NET viewer, as ./scripts/bench-live-log.sh measures): {hubLatencies.Count} lines, p50 {P(hubLatencies, 0.50):0} ms, p99 {P(hubLatencies, 0.99):0} ms, max {(hubLatencies.Count > 0 ? hubLatencies[^1] : 0):0} ms
              p99 by second of the log: {BySecond(timed)}; p50 by tab: {string.Join(", ", perTab.Select(p => p.ToString("0", CultureInfo.InvariantCulture)))}
            """));
    }

    // The p99 latency of the lines emitted in each second of the live log: where in the run the tail comes from.
    private static string BySecond(List<(double Emitted, double Latency)> timed)
    {
        if (timed.Count == 0)
        {
            return "none";
        }

        var start = timed.Min(t => t.Emitted);
        return string.Join(", ", timed.GroupBy(t => (int)((t.Emitted - start) / 1000)).OrderBy(g => g.Key)
            .Select(g => string.Create(CultureInfo.InvariantCulture, $"{g.Key}s {P(g.Select(t => t.Latency).Order().ToList(), 0.99):0}")));
    }

    // Every process whose program is Debian's Chromium (/usr/bin/chromium starts /usr/lib/chromium/chromium): the
    // browser, its renderers, GPU and utility processes.
    private static void Renice(int niceness)
    {
        var arguments = new List<string> { "-n", niceness.ToString(CultureInfo.InvariantCulture), "-p" };
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out _)
                    && File.ReadAllText(Path.Combine(dir, "cmdline")).StartsWith("/usr/lib/chromium/", StringComparison.Ordinal))
                {
                    arguments.Add(Path.GetFileName(dir));
                }
            }
            catch (IOException)
            {
                // The process ended meanwhile.
            }
        }

        using var renice = Process.Start(new ProcessStartInfo("renice", arguments) { RedirectStandardOutput = true })!;
        renice.WaitForExit();
    }

    private static double P(List<double> sorted, double q) => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(sorted.Count * q))];

    /// <summary>The managed heap after a full, compacting collection, and the resident set, in MiB.</summary>
    private static (double Heap, double Resident) Memory()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        var heap = GC.GetTotalMemory(forceFullCollection: true) / 1_048_576.0;
        return (heap, ResidentMiB("VmRSS:"));
    }

    private static long PeakResidentMiB() => (long)ResidentMiB("VmHWM:");

    private static double ResidentMiB(string field) =>
        File.ReadLines("/proc/self/status").Where(l => l.StartsWith(field, StringComparison.Ordinal))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0).First();

    private static class Accounts
    {
        public static async Task SignInAsync(IPage page)
        {
            await page.GotoAsync("/account/login");
            await page.FillAsync("#email", UpgradeConsoleApplicationFactory.AdminEmail);
            await page.FillAsync("#password", UpgradeConsoleApplicationFactory.AdminPassword);
            await page.ClickAsync("#login-submit");
            await Assertions.Expect(page.GetByTestId("current-user")).ToHaveTextAsync(UpgradeConsoleApplicationFactory.AdminEmail);
        }
    }
}
