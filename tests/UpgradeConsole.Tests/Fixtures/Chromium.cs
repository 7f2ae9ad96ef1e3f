using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// Debian's Chromium, headless, driven by Playwright (never Playwright's own browser download).
/// One browser for the test run; each test gets its own context (cookies, storage) and page.
/// </summary>
public sealed class Chromium : IAsyncLifetime
{
    public const string ExecutablePath = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = default!;

    public async ValueTask InitializeAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new InvalidOperationException($"{ExecutablePath} not found: run ./scripts/test.sh, which installs Debian's chromium.");
        }

        // Generous waits: the suite runs browser, sshd and PostgreSQL tests in parallel on two cores.
        Assertions.SetDefaultExpectTimeout(15_000);
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            Args =
            [
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
            ],
        });
    }

    /// <summary>A fresh browser context whose pages resolve relative URLs against <paramref name="baseUrl"/>.</summary>
    public async Task<BrowserSession> NewSessionAsync(string baseUrl, string? colorScheme = null)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = baseUrl,
            ViewportSize = new ViewportSize { Width = 1440, Height = 900 },
            ColorScheme = colorScheme == "dark" ? ColorScheme.Dark : ColorScheme.Light,
        });
        context.SetDefaultTimeout(30_000);
        context.SetDefaultNavigationTimeout(30_000);
        var page = await context.NewPageAsync();
        return new BrowserSession(context, page);
    }

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }

        _playwright?.Dispose();
    }
}

/// <summary>One person's browser: a context and its page, recording console errors and CSP violations.</summary>
public sealed class BrowserSession : IAsyncDisposable
{
    private readonly List<string> _problems = [];

    public BrowserSession(IBrowserContext context, IPage page)
    {
        Context = context;
        Page = page;
        page.Console += (_, message) =>
        {
            if (message.Type is "error" or "warning")
            {
                lock (_problems)
                {
                    _problems.Add($"{message.Type}: {message.Text}");
                }
            }
        };
        page.PageError += (_, error) =>
        {
            lock (_problems)
            {
                _problems.Add($"page error: {error}");
            }
        };
    }

    public IBrowserContext Context { get; }

    public IPage Page { get; }

    /// <summary>Console errors, warnings (CSP violations are reported there) and uncaught exceptions so far.</summary>
    public IReadOnlyList<string> Problems
    {
        get
        {
            lock (_problems)
            {
                return [.. _problems];
            }
        }
    }

    /// <summary>
    /// Waits until an interactive page's circuit runs it: the layout sets data-interactive in its first
    /// OnAfterRenderAsync, so clicks after this reach the server (no sleeps).
    /// </summary>
    public Task WaitForInteractiveAsync() => Page.WaitForInteractiveAsync();

    /// <summary>Opens <paramref name="path"/> and waits for its circuit.</summary>
    public async Task<IResponse?> GotoInteractiveAsync(string path)
    {
        var response = await Page.GotoAsync(path);
        await WaitForInteractiveAsync();
        return response;
    }

    /// <summary>
    /// Saves a screenshot under TestResults/screenshots, named after the page: the full page, or with
    /// <paramref name="fullPage"/> false what the window shows (a full-page capture has Chromium paint every scroll
    /// area whole, which for a log view holding thousands of lines does not finish in time on a loaded machine).
    /// </summary>
    public async Task ScreenshotAsync(string name, bool fullPage = true)
    {
        var dir = Path.Combine(TestPaths.ResultsDirectory, "screenshots");
        Directory.CreateDirectory(dir);
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(dir, name + ".png"), FullPage = fullPage });
    }

    public async ValueTask DisposeAsync() => await Context.CloseAsync();
}

public static class InteractivePages
{
    /// <summary>
    /// Waits until an interactive page's circuit runs it: the layout sets data-interactive in its first
    /// OnAfterRenderAsync, so clicks after this reach the server (no sleeps).
    /// </summary>
    public static Task WaitForInteractiveAsync(this IPage page) =>
        Assertions.Expect(page.Locator("#uc-app")).ToHaveAttributeAsync("data-interactive", "true");

    /// <summary>
    /// Waits until the page's address matches <paramref name="address"/>, by polling it. An interactive page moves by
    /// <c>history.pushState</c> (NavigationManager, or a link Blazor intercepts), often before the click that caused it
    /// has returned; <see cref="IPage.WaitForURLAsync(Regex, PageWaitForURLOptions?)"/> then sometimes waits for a
    /// navigation that has already happened and times out with the right address showing (seen half the time on
    /// /audit and /runs filters). A full page load after a form post is still waited for with WaitForURLAsync.
    /// </summary>
    public static Task WaitForAddressAsync(this IPage page, Regex address) =>
        Assertions.Expect(page).ToHaveURLAsync(address, new() { Timeout = 30_000 });
}
