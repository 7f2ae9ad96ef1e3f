using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Benchmarks;

/// <summary>
/// The Fractal users page with many users, in a real browser: a real PostgreSQL with the 2.16 fixture plus
/// generated users, reached through the SSH forward of a real sshd, the dashboard on Kestrel, Debian's
/// Chromium through Playwright. Measures (1) the server's first response (request to last byte, as the
/// static page was measured before), (2) the first meaningful paint: navigation start to the first frame
/// that draws user rows (prerendered or drawn by the circuit), beside the document's own timings and its
/// first contentful paint, and (3) each sort, filter and page round trip: the click to the changed rows on
/// screen, and the click to the page's first change (the server's answer). All timed inside the page
/// (performance.now, a MutationObserver, requestAnimationFrame), so Playwright's own latency is not counted.
/// </summary>
internal static class UsersBenchmark
{
    private const int Rounds = 30;

    // Resolves with the milliseconds from the click to the next frame after the grid shows other rows
    // (first and last e-mail of the page, or the count line), to the page's first change (the server's first
    // answer), and to the rows' change; -1 after 60 s.
    private const string ClickAndWait = """
        (el) => new Promise(resolve => {
            const state = () => {
                const rows = document.querySelectorAll('[data-testid=fractal-user]');
                const count = document.querySelector('[data-testid=users-count]');
                return (rows.length ? rows[0].getAttribute('data-email') + '|' + rows[rows.length - 1].getAttribute('data-email') : '') + '|' + (count ? count.textContent : '');
            };
            const before = state();
            const received = window.ucReceived.length;
            const start = performance.now();
            let first = -1;
            const timer = setTimeout(() => { observer.disconnect(); resolve([-1, -1, -1, -1, -1]); }, 60000);
            const observer = new MutationObserver(() => {
                if (first < 0) { first = performance.now() - start; }
                if (state() !== before) {
                    observer.disconnect();
                    clearTimeout(timer);
                    const changed = performance.now() - start;
                    // The server's answer: the last WebSocket message that arrived before the rows changed.
                    const answers = window.ucReceived.slice(received);
                    const answer = answers.length ? answers[answers.length - 1] : [start - 1, 0];
                    requestAnimationFrame(() => resolve([performance.now() - start, first, changed, answer[0] - start, answer[1]]));
                }
            });
            observer.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
            el.click();
        })
        """;

    // Every WebSocket message the page receives, with the time it arrived (before Blazor handles it) and its size.
    private const string RecordWebSocketMessages = """
        (() => {
          const Native = window.WebSocket;
          window.ucReceived = [];
          window.WebSocket = class extends Native {
            constructor(...args) {
              super(...args);
              this.addEventListener('message', e => {
                window.ucReceived.push([performance.now(), typeof e.data === 'string' ? e.data.length : (e.data.byteLength || e.data.size || 0)]);
              });
            }
          };
        })();
        """;

    public static async Task<int> RunAsync(int count, bool trace = false)
    {
        // The app factory finds the dashboard's content root through the test assembly; from here, say it.
        Environment.SetEnvironmentVariable("ASPNETCORE_TEST_CONTENTROOT_UPGRADECONSOLE_WEB", Path.Combine(TestPaths.RepositoryRoot, "src", "UpgradeConsole.Web"));
        var postgres = new PostgresServer();
        var ssh = new SshServer();
        var chromium = new Chromium();
        await postgres.InitializeAsync();
        await ssh.InitializeAsync();
        await chromium.InitializeAsync();
        try
        {
            await using var app = new UpgradeConsoleApplicationFactory();
            // For comparing: how long a read of the target's users answers everyone (default 3 s; past it, the page
            // is answered from the older read while one read in the background replaces it).
            if (Environment.GetEnvironmentVariable("UC_BENCH_READ_CACHE_FOR") is { Length: > 0 } cacheFor)
            {
                app.WithSetting("UpgradeConsole:TargetWork:ReadCacheFor", cacheFor);
                Console.WriteLine($"reads of the target kept for {cacheFor}");
            }

            app.ServeOverKestrel();
            var admin = await app.CreateFirstAdminAsync();
            await using var fractal = await FractalTarget.CreateAsync(app, admin, ssh, postgres, extraSql: GeneratedUsers.Sql(count));
            var path = $"/targets/{fractal.TargetId}/users";
            Console.WriteLine($"{count + 10} users in the target's database; {Rounds} rounds each (after warm-up)");

            // (1) The first response: now the page's shell, prerendered; the rows come over the circuit.
            await (await admin.GetAsync(path)).ExpectOkAsync();
            var http = new List<double>();
            for (var i = 0; i < Rounds; i++)
            {
                var clock = Stopwatch.StartNew();
                await (await admin.GetAsync(path)).ExpectOkAsync();
                http.Add(clock.Elapsed.TotalMilliseconds);
            }

            Print("first response (HTTP, server render of the shell)", http);

            await using var browser = await chromium.NewSessionAsync(app.BaseUrl);
            var page = browser.Page;
            await page.GotoAsync("/account/login");
            await page.FillAsync("#email", UpgradeConsoleApplicationFactory.AdminEmail);
            await page.FillAsync("#password", UpgradeConsoleApplicationFactory.AdminPassword);
            await page.ClickAsync("#login-submit");
            await Assertions.Expect(page.GetByTestId("current-user")).ToHaveTextAsync(UpgradeConsoleApplicationFactory.AdminEmail);

            // (2) First meaningful paint: a fresh navigation each round (a new circuit), to the frame that first draws
            // user rows. Timed in the page from the document's start: the first frame (requestAnimationFrame) after a
            // row is in the document, and the first task after that frame (its paint is done by then).
            await page.AddInitScriptAsync(RecordWebSocketMessages);
            await page.AddInitScriptAsync("""
                (() => {
                  const observer = new MutationObserver(() => {
                    if (window.ucFirstRows !== undefined || !document.querySelector('[data-testid=fractal-user]')) { return; }
                    window.ucFirstRows = -1;
                    observer.disconnect();
                    requestAnimationFrame(() => {
                      const channel = new MessageChannel();
                      channel.port1.onmessage = () => { window.ucFirstRows = performance.now(); };
                      channel.port2.postMessage(0);
                    });
                  });
                  observer.observe(document, { subtree: true, childList: true });
                })();
                """);
            var paint = new List<double>();
            var contentful = new List<double>();
            var responded = new List<double>();
            var parsed = new List<double>();
            for (var i = -2; i < Rounds; i++)
            {
                await page.GotoAsync("about:blank");
                await page.GotoAsync(path, new() { WaitUntil = WaitUntilState.Commit });
                // Generous: the warm-up rounds open the target's SSH forward and compile the grid's code, slow on a loaded machine.
                await page.WaitForFunctionAsync("() => window.ucFirstRows > 0 && performance.getEntriesByName('first-contentful-paint').length > 0", null, new() { Timeout = 180_000 });
                var measured = await page.EvaluateAsync<double[]>("""
                    () => {
                        const nav = performance.getEntriesByType('navigation')[0];
                        const fcp = performance.getEntriesByName('first-contentful-paint')[0];
                        return [window.ucFirstRows - (nav ? nav.startTime : 0), fcp ? fcp.startTime : -1, nav ? nav.responseEnd : -1, nav ? nav.domInteractive : -1];
                    }
                    """);
                if (i >= 0)
                {
                    paint.Add(measured[0]);
                    contentful.Add(measured[1]);
                    responded.Add(measured[2]);
                    parsed.Add(measured[3]);
                }
            }

            Print("navigation: the page's last byte", responded);
            Print("navigation: the page parsed (domInteractive)", parsed);
            Print("first contentful paint", contentful);
            Print("first meaningful paint (navigation to the frame that first draws user rows)", paint);

            // (3) Round trips on one open page.
            await page.WaitForInteractiveAsync();
            await Assertions.Expect(page.GetByTestId("users-count")).ToContainTextAsync("page 1 of");
            var reads = app.Services.GetRequiredService<UpgradeConsole.Web.Targets.TargetReads>();
            var readsBefore = reads.Performed;
            var roundTrips = Stopwatch.StartNew();
            await RoundTripsAsync("sort by e-mail (asc / desc / none)", page.Locator("#sort-email"), page.Locator("#sort-email"));
            await RoundTripsAsync("filter (blocking / all)", page.GetByTestId("count-blocking"), page.GetByTestId("count-all"));
            await RoundTripsAsync("page (next / previous)", page.GetByRole(AriaRole.Button, new() { Name = "Next page" }), page.GetByRole(AriaRole.Button, new() { Name = "Previous page" }));

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"reads of the target during the round trips: {reads.Performed - readsBefore} in {roundTrips.Elapsed.TotalSeconds:0.0} s"));
            if (trace)
            {
                // Where the tab's own time goes (on a loaded machine, relative figures only).
                await RendererTrace.PrintAsync(chromium.Browser, "a fresh navigation to the first rows", async () =>
                {
                    await page.GotoAsync("about:blank");
                    await page.GotoAsync(path, new() { WaitUntil = WaitUntilState.Commit });
                    await page.WaitForFunctionAsync("() => window.ucFirstRows > 0", null, new() { Timeout = 60_000 });
                });
                await page.WaitForInteractiveAsync();
                await Assertions.Expect(page.GetByTestId("users-count")).ToContainTextAsync("page 1 of");
                await RendererTrace.PrintAsync(chromium.Browser, "ten sort round trips", async () =>
                {
                    for (var i = 0; i < 10; i++)
                    {
                        await page.Locator("#sort-email").EvaluateAsync<double[]>(ClickAndWait);
                    }
                });
            }

            return 0;
        }
        finally
        {
            await chromium.DisposeAsync();
            await ssh.DisposeAsync();
            await postgres.DisposeAsync();
        }
    }

    private static async Task RoundTripsAsync(string name, ILocator first, ILocator second)
    {
        var times = new List<double>();
        var answered = new List<double>();
        var changed = new List<double>();
        var arrived = new List<double>();
        var applied = new List<double>();
        var sizes = new List<double>();
        for (var i = -2; i < Rounds; i++)
        {
            var target = i % 2 == 0 ? first : second;
            await target.WaitForAsync();
            var elapsed = await target.EvaluateAsync<double[]>(ClickAndWait);
            if (elapsed[0] < 0)
            {
                throw new InvalidOperationException($"{name}: the grid did not change within 60 s of a click.");
            }

            if (i >= 0)
            {
                times.Add(elapsed[0]);
                answered.Add(elapsed[1]);
                changed.Add(elapsed[2]);
                arrived.Add(elapsed[3]);
                applied.Add(elapsed[2] - elapsed[3]);
                sizes.Add(elapsed[4]);
            }
        }

        Print(name + " round trip", times);
        Print("  of which: click to the page's first change", answered);
        Print("  of which: click to the rows' change", changed);
        Print("  of which: click to the answer's arrival (the server's part, and the network)", arrived);
        Print("  of which: the answer's arrival to the rows' change (Blazor applying it)", applied);
        Print("  the answer's size (characters)", sizes, "");
    }

    private static void Print(string what, List<double> times, string unit = " ms")
    {
        times.Sort();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{what}: median {times[times.Count / 2]:0}{unit}, p95 {times[(int)Math.Ceiling(times.Count * 0.95) - 1]:0}{unit}, max {times[^1]:0}{unit} (n={times.Count})"));
    }
}
