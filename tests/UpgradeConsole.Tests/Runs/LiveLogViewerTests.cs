using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Two people watch the same run's log in two browsers while it is written; one reloads mid-stream
/// and loses nothing. The viewer's tools: the tail first, phase filter, search, ANSI colours, the
/// first error (outside the loaded tail), and a link to a line.
/// </summary>
public sealed class LiveLogViewerTests(Chromium chromium) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private HttpClient _admin = default!;
    private int _runId;
    private List<RunPhase> _phases = [];

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var target = new Target { Name = "viewer-target", Host = "127.0.0.1", SshUser = "nobody", WorkingDirectory = "/srv/fractal" };
        db.Targets.Add(target);
        await db.SaveChangesAsync();
        // An earlier run of the same runbook took 10 minutes: the page's estimate goes by it.
        var now = TimeProvider.System.GetUtcNow();
        db.Runs.Add(new Run
        {
            TargetId = target.Id,
            RunbookId = UpgradeConsole.Web.Fractal.FractalRunbooks.ReleaseId,
            FromVersion = "2.16.5",
            ToVersion = "2.16.6",
            State = RunState.Succeeded,
            PlannedBy = "test",
            StartedAt = now.AddHours(-2),
            EndedAt = now.AddHours(-2).AddMinutes(10),
        });
        await db.SaveChangesAsync();
        (_runId, _phases) = await RunSeed.AddRunningRunAsync(_app.Services, now.AddMinutes(-2),
            ("backup", "Back up the database", PhaseState.Succeeded),
            ("pip-install", "Install the new version", PhaseState.Running));
    }

    [Fact]
    public async Task FollowingKeepsTheNewestLineInView_ScrollingUpPauses_AndFollowCatchesUp()
    {
        var writer = new RunLogWriter(_app.Services.GetRequiredService<IServiceScopeFactory>(), _runId, [], TimeProvider.System);
        await WriteAsync(writer, 1, 3000);
        await using var viewer = await chromium.NewSessionAsync(_app.BaseUrl);
        await Accounts.SigningInTests.SignInAsync(viewer.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        var page = viewer.Page;
        await page.GotoInteractiveAsync($"/runs/{_runId}");
        await Assertions.Expect(page.Locator("#L3000")).ToBeAttachedAsync(new() { Timeout = 30_000 });

        // Lines arrive in many small batches, each drawn before the next is written: the view follows to the newest, never pausing itself.
        await WriteAsync(writer, 3001, 5000, drawnBy: page);
        await Assertions.Expect(page.Locator("#L5000")).ToBeAttachedAsync(new() { Timeout = 30_000 });
        await Assertions.Expect(page.Locator("#log-follow")).ToBeCheckedAsync();
        await page.WaitForFunctionAsync(AtTheBottom);
        await Assertions.Expect(page.GetByTestId("log-status")).ToContainTextAsync("live");

        // The reader scrolls up: following pauses, and what comes meanwhile is not drawn under them.
        await page.EvaluateAsync("() => { document.getElementById('log-lines').scrollTop = 0; }");
        await Assertions.Expect(page.Locator("#log-follow")).Not.ToBeCheckedAsync();
        await Assertions.Expect(page.GetByTestId("log-status")).ToContainTextAsync("Paused (scrolled up)");
        await WriteAsync(writer, 5001, 5300);
        await Assertions.Expect(page.Locator("#log-lines")).ToHaveJSPropertyAsync("scrollTop", 0);

        // Follow again: the lines written meanwhile are fetched, in order, and the view is at the newest.
        await page.Locator("#log-follow").CheckAsync();
        await Assertions.Expect(page.Locator("#L5300")).ToBeAttachedAsync(new() { Timeout = 30_000 });
        await page.WaitForFunctionAsync(AtTheBottom);
        var sequences = await RunLogView.DrawnAsync(page);
        Assert.Equal(Enumerable.Range((int)sequences[0], sequences.Length).Select(i => (long)i), sequences);
        Assert.Equal(5300L, sequences[^1]);
        // Only the lines in view (and a few around) are drawn; every line since the tail is kept, none twice.
        Assert.InRange(sequences.Length, 10, 200);
        Assert.Equal((1001L, 5300L, 4300L), await RunLogView.KeptAsync(page));
    }

    private const string LineInView = """
        seq => {
          const v = document.getElementById('log-lines').getBoundingClientRect();
          const line = document.getElementById('log-lines').shadowRoot.getElementById('L' + seq);
          if (!line) { return false; }
          const r = line.getBoundingClientRect();
          return r.height > 0 && r.top >= v.top && r.bottom <= v.bottom;
        }
        """;

    private const string AtTheBottom = "() => { const v = document.getElementById('log-lines'); return v.scrollHeight - v.scrollTop - v.clientHeight < 8; }";

    /// <summary>Writes lines <paramref name="from"/>–<paramref name="to"/>; with <paramref name="drawnBy"/>, 50 at a time, each batch once the page has drawn the last.</summary>
    private async Task WriteAsync(RunLogWriter writer, int from, int to, IPage? drawnBy = null)
    {
        for (var i = from; i <= to; i++)
        {
            await writer.WriteAsync(_phases[0], $"backup line {i}");
            if (drawnBy is not null && i % 50 == 0)
            {
                await writer.FlushAsync();
                await Assertions.Expect(drawnBy.Locator($"#L{i}")).ToBeAttachedAsync(new() { Timeout = 30_000 });
            }
        }

        await writer.FlushAsync();
    }

    [Fact]
    public async Task TwoViewersWatchLive_OneReloadsMidStream_AndBothEndWithEveryLine()
    {
        var writer = new RunLogWriter(_app.Services.GetRequiredService<IServiceScopeFactory>(), _runId, ["hunter2-secret"], TimeProvider.System);
        for (var i = 1; i <= 3000; i++)
        {
            var text = i switch
            {
                200 => "step failed: retrying with a longer timeout",
                1500 => "\u001b[31mERROR: disk full\u001b[0m on /var",
                1600 => "password is hunter2-secret",
                _ => $"backup line {i}",
            };
            await writer.WriteAsync(_phases[0], text);
        }

        await writer.FlushAsync();
        var viewerPassword = await _app.CreateUserAsync(_admin, "watcher@example.org", "Viewer");
        await using var alice = await chromium.NewSessionAsync(_app.BaseUrl);
        await using var bob = await chromium.NewSessionAsync(_app.BaseUrl);
        await Accounts.SigningInTests.SignInAsync(alice.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await Accounts.SigningInTests.SignInAsync(bob.Page, "watcher@example.org", viewerPassword);
        foreach (var page in new[] { alice.Page, bob.Page })
        {
            await page.GotoInteractiveAsync($"/runs/{_runId}");
            // The tail first: the last 2000 lines.
            await Assertions.Expect(page.Locator("#L3000")).ToBeAttachedAsync(new() { Timeout = 30_000 });
            await Assertions.Expect(page.Locator("#log-lines")).ToHaveAttributeAsync("data-first", "1001");
            Assert.Equal((1001L, 3000L, 2000L), await RunLogView.KeptAsync(page));
        }

        // The run goes on; Bob reloads in the middle of it.
        var writing = Task.Run(async () =>
        {
            for (var i = 1; i <= 1500; i++)
            {
                await writer.WriteAsync(_phases[1], $"pip line {i}");
                if (i % 100 == 0)
                {
                    await writer.FlushAsync();
                    await Task.Delay(100);
                }
            }

            await writer.FlushAsync();
        });
        await Assertions.Expect(bob.Page.Locator("#L3300")).ToBeAttachedAsync(new() { Timeout = 30_000 });
        await bob.Page.ReloadAsync();
        await writing;
        foreach (var page in new[] { alice.Page, bob.Page })
        {
            await Assertions.Expect(page.Locator("#L4500")).ToBeAttachedAsync(new() { Timeout = 30_000 });
            var sequences = await RunLogView.DrawnAsync(page);
            Assert.Equal(Enumerable.Range((int)sequences[0], sequences.Length).Select(i => (long)i), sequences);
            Assert.Equal(4500L, sequences[^1]);
            // Alice kept every line since the tail; Bob every line since his reload's tail. None twice, none missing.
            var (first, last, kept) = await RunLogView.KeptAsync(page);
            Assert.Equal((4500L, last - first + 1), (last, kept));
            Assert.True(first <= 2501, $"first kept line {first}");
            // The secret never reached the browser: no kept line has it.
            await page.FillAsync("#log-search", "hunter2");
            await Assertions.Expect(page.GetByTestId("log-search-count")).ToHaveTextAsync("0 matches");
        }

        var alicePage = alice.Page;
        await Assertions.Expect(alicePage.GetByTestId("run-progress")).ToContainTextAsync(
            new System.Text.RegularExpressions.Regex(@"1 of 2 phases done .* elapsed · about [78] min [0-9]+ s left \(earlier runs took 10 min 0 s\)"));
        // The masked line, found with the search box (Enter goes to the match).
        await alicePage.FillAsync("#log-search", "password is");
        await Assertions.Expect(alicePage.GetByTestId("log-search-count")).ToHaveTextAsync("1 match");
        await alicePage.Locator("#log-search").PressAsync("Enter");
        await Assertions.Expect(alicePage.Locator("#L1600")).ToContainTextAsync("password is ••••");
        await Assertions.Expect(alicePage.Locator("#log-follow")).Not.ToBeCheckedAsync();

        // Search in what is loaded.
        await alicePage.FillAsync("#log-search", "disk full");
        await Assertions.Expect(alicePage.GetByTestId("log-search-count")).ToHaveTextAsync("1 match");
        await alicePage.Locator("#log-search").PressAsync("Enter");
        await Assertions.Expect(alicePage.Locator("#L1500")).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("uc-log-current"));
        await alicePage.WaitForFunctionAsync(LineInView, 1500, new() { Timeout = 30_000 });

        // ANSI colours become classes.
        await Assertions.Expect(alicePage.Locator("#L1500 .ansi-fg-31")).ToHaveTextAsync("ERROR: disk full");
        // The lines live in the view's shadow root, styled by their own sheet alone (the page's rules never reach
        // them), yet in the page's palette and font: the error colour, line numbers not underlined, no ligatures.
        var look = await alicePage.Locator("#L1500").EvaluateAsync<string[]>("""
            l => {
              const root = l.getRootNode();
              const probe = document.createElement('span');
              probe.style.color = 'var(--mud-palette-error)';
              document.getElementById('log-lines').after(probe);
              const error = getComputedStyle(probe).color;
              probe.remove();
              return [
                root instanceof ShadowRoot ? root.host.id : 'not in a shadow root',
                String(root.styleSheets.length),
                getComputedStyle(l.querySelector('.ansi-fg-31')).color === error ? 'error colour' : getComputedStyle(l.querySelector('.ansi-fg-31')).color,
                getComputedStyle(l.querySelector('a.uc-log-no')).textDecorationLine,
                getComputedStyle(l).fontVariantLigatures,
                getComputedStyle(l).fontFamily === getComputedStyle(document.getElementById('log-lines')).fontFamily ? 'view font' : getComputedStyle(l).fontFamily,
              ];
            }
            """);
        Assert.Equal(["log-lines", "1", "error colour", "none", "none", "view font"], look);

        // Phase filter: only the pip lines are shown; the reader, at line 1500 of the backup, sees the first pip line.
        await alicePage.SelectOptionAsync("#log-phase", "1");
        await alicePage.WaitForFunctionAsync(LineInView, 3001, new() { Timeout = 30_000 });
        var drawn = await alicePage.Locator("#log-lines .uc-log-line").EvaluateAllAsync<string[]>("ls => ls.map(l => l.dataset.phase)");
        Assert.NotEmpty(drawn);
        Assert.All(drawn, phase => Assert.Equal("1", phase));
        // Every phase again: the reader stays where they were.
        await alicePage.SelectOptionAsync("#log-phase", "");
        await alicePage.WaitForFunctionAsync(LineInView, 3001, new() { Timeout = 30_000 });
        await Assertions.Expect(alicePage.Locator("#L3000")).ToHaveAttributeAsync("data-phase", "0");
        // A larger text size (the page's root font): the lines are measured again, and the reader is still at line 3001.
        var height = await alicePage.Locator("#L3001").EvaluateAsync<double>("l => l.getBoundingClientRect().height");
        await alicePage.EvaluateAsync("() => { document.documentElement.style.fontSize = '24px'; }");
        await alicePage.WaitForFunctionAsync("h => { const l = document.getElementById('log-lines').shadowRoot.getElementById('L3001'); return l && l.getBoundingClientRect().height > h * 1.2; }", height);
        await alicePage.WaitForFunctionAsync(LineInView, 3001, new() { Timeout = 30_000 });
        await alicePage.EvaluateAsync("() => { document.documentElement.style.fontSize = ''; }");
        await alicePage.WaitForFunctionAsync(LineInView, 3001, new() { Timeout = 30_000 });

        // The first error is line 200, outside the loaded tail: the viewer loads the lines around it.
        await alicePage.ClickAsync("#log-first-error");
        await Assertions.Expect(alicePage.Locator("#L200")).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("uc-log-target"), new() { Timeout = 30_000 });
        Assert.EndsWith($"/runs/{_runId}#L200", alicePage.Url, StringComparison.Ordinal);
        await Assertions.Expect(alicePage.GetByTestId("log-status")).ToContainTextAsync("paused at line 200");
        // And it is in the log's view, not only loaded: the new lines' box takes its real height once drawn, and the
        // view centres the line again then.
        await alicePage.WaitForFunctionAsync(LineInView, 200, new() { Timeout = 30_000 });

        // A link to a line opens there.
        await bob.Page.GotoAsync($"/runs/{_runId}#L2500");
        await bob.Page.ReloadAsync();
        await Assertions.Expect(bob.Page.Locator("#L2500")).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("uc-log-target"));
        // A line's number is that link, on this page despite <base href="/">: clicked, it stays on the run and names the line.
        Assert.Equal($"/runs/{_runId}#L2510", await bob.Page.Locator("#L2510 a.uc-log-no").GetAttributeAsync("href"));
        await bob.Page.Locator("#L2510 a.uc-log-no").ClickAsync();
        await Assertions.Expect(bob.Page.Locator("#L2510")).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("uc-log-target"), new() { Timeout = 30_000 });
        Assert.EndsWith($"/runs/{_runId}#L2510", bob.Page.Url, StringComparison.Ordinal);
        // What the window shows, the viewer in it: the log view holds 4,000+ lines here (see ScreenshotAsync).
        await alicePage.Locator("#run-log-viewer").ScrollIntoViewIfNeededAsync();
        await alice.ScreenshotAsync("run-log-viewer", fullPage: false);
        Assert.True(alice.Problems.Count == 0, string.Join('\n', alice.Problems));
        Assert.True(bob.Problems.Count == 0, string.Join('\n', bob.Problems));
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
