using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// A run with a 1,000,000-line log in a real browser: the page shows the tail first, keeps a bounded
/// number of lines, stays responsive while loading more, searching and jumping to the first error
/// (line 777,777, far outside the tail), and "Download log" gives every line.
/// </summary>
public sealed class MillionLineRunPageTests(Chromium chromium) : IAsyncLifetime
{
    private const int Total = 1_000_000;
    private const int FirstError = 777_777;
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private HttpClient _admin = default!;
    private int _runId;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
        (_runId, _) = await RunSeed.AddRunningRunAsync(_app.Services, TimeProvider.System.GetUtcNow().AddMinutes(-30), ("pip-install", "Install the new version", PhaseState.Running));
        // A million 100-byte lines, written by the run's log writer (chunks, as a run stores them).
        var writer = new RunLogWriter(_app.Services.GetRequiredService<IServiceScopeFactory>(), _runId, [], TimeProvider.System);
        await using var scope = _app.Services.CreateAsyncScope();
        var phase = await scope.ServiceProvider.GetRequiredService<AppDbContext>().RunPhases.FirstAsync(p => p.RunId == _runId);
        const string letters = "abcdefghijklmnopqrstuvwxyz0123456789";
        for (var i = 1; i <= Total; i++)
        {
            await writer.WriteAsync(phase, i == FirstError
                ? "ERROR: could not write the wheel cache"
                : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"line {i:D7} collecting packages and checking their hashes, {letters.AsSpan(i % 20, 16)}"), i * 100L);
        }

        await writer.FlushAsync();
    }

    [Fact]
    public async Task TheRunPage_ShowsTheTailFirst_StaysBoundedAndResponsive_AndTheDownloadHasEveryLine()
    {
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await Accounts.SigningInTests.SignInAsync(page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);

        var clock = Stopwatch.StartNew();
        await page.GotoAsync($"/runs/{_runId}");
        await Assertions.Expect(page.Locator($"#L{Total}")).ToBeAttachedAsync(new() { Timeout = 60_000 });
        var tailShown = clock.Elapsed;
        var view = page.Locator("#log-lines");
        Assert.Equal((Total - 1999L, (long)Total, 2000L), await RunLogView.KeptAsync(page));
        // Only the lines in view (and a few around) are elements, whatever the number kept.
        var drawn = page.Locator("#log-lines .uc-log-line");
        Assert.InRange(await drawn.CountAsync(), 10, 200);

        // Responsive: a frame is painted promptly, and "Load earlier" answers while the page holds thousands of lines.
        var frame = await FrameDelayAsync(page);
        clock.Restart();
        for (var i = 1; i <= 3; i++)
        {
            await page.ClickAsync("#log-earlier");
            await Assertions.Expect(view).ToHaveAttributeAsync("data-kept", (2000 + (i * 1000)).ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var earlier = clock.Elapsed / 3;
        await Assertions.Expect(view).ToHaveAttributeAsync("data-first", (Total - 4999).ToString(System.Globalization.CultureInfo.InvariantCulture));
        // The view stayed on the newest lines while the earlier ones went in above them.
        Assert.Contains((long)Total, await RunLogView.DrawnAsync(page));

        // Search in what is loaded.
        clock.Restart();
        await page.FillAsync("#log-search", "line 0999999");
        await Assertions.Expect(page.GetByTestId("log-search-count")).ToHaveTextAsync("1 match");
        var searched = clock.Elapsed;

        // The first error, far outside the tail: the lines around it are loaded, the page stays bounded.
        clock.Restart();
        await page.ClickAsync("#log-first-error");
        await Assertions.Expect(page.Locator($"#L{FirstError}")).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("uc-log-target"), new() { Timeout = 60_000 });
        var jumped = clock.Elapsed;
        await Assertions.Expect(page.Locator($"#L{FirstError}")).ToContainTextAsync("ERROR: could not write the wheel cache");
        var (_, _, kept) = await RunLogView.KeptAsync(page);
        Assert.InRange(kept, 1, 20_000);
        Assert.InRange(await drawn.CountAsync(), 1, 200);
        var frameAfter = await FrameDelayAsync(page);

        // Scrolling through what is loaded is smooth enough to measure in frames, not seconds.
        var scroll = await page.EvaluateAsync<double>("""
            async () => {
              const view = document.getElementById('log-lines');
              const t = performance.now();
              for (let i = 0; i < 20; i++) {
                view.scrollTop = (i % 2 ? 0 : view.scrollHeight);
                await new Promise(r => requestAnimationFrame(() => r()));
              }
              return (performance.now() - t) / 20;
            }
            """);

        // Generous bounds: this asserts behaviour (nothing hangs), not a speed goal.
        Assert.True(tailShown < TimeSpan.FromSeconds(20), $"tail shown after {tailShown}");
        Assert.True(frame < 1000 && frameAfter < 1000 && scroll < 1000, $"frame {frame} ms, after the jump {frameAfter} ms, scroll step {scroll} ms");
        Assert.True(earlier < TimeSpan.FromSeconds(10) && searched < TimeSpan.FromSeconds(10) && jumped < TimeSpan.FromSeconds(30),
            $"load earlier {earlier}, search {searched}, first error {jumped}");
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"1M-line run page: tail shown {tailShown.TotalMilliseconds:0} ms; frame {frame:0} ms; load 1000 earlier {earlier.TotalMilliseconds:0} ms; " +
            $"search {searched.TotalMilliseconds:0} ms; first error {jumped.TotalMilliseconds:0} ms; frame after {frameAfter:0} ms; scroll step {scroll:0.0} ms; lines kept {(await RunLogView.KeptAsync(page)).Kept}, drawn {await drawn.CountAsync()}");

        // "Download log": the whole text, streamed from the database.
        var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#download-log"));
        var path = await download.PathAsync();
        long count = 0;
        string? lastLine = null;
        await foreach (var line in File.ReadLinesAsync(path!, TestContext.Current.CancellationToken))
        {
            count++;
            lastLine = line;
        }

        Assert.Equal(Total, count);
        Assert.StartsWith("line 1000000 ", lastLine, StringComparison.Ordinal);
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    /// <summary>How long the page takes to paint a frame now (ms): large when the main thread is busy.</summary>
    private static Task<double> FrameDelayAsync(IPage page) =>
        page.EvaluateAsync<double>("() => new Promise(r => { const t = performance.now(); requestAnimationFrame(() => setTimeout(() => r(performance.now() - t), 0)); })");

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
