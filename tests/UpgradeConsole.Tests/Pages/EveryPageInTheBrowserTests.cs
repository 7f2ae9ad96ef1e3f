using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Pages;

/// <summary>
/// Opens every page in Chromium as an Admin, in the light and the dark theme and at laptop and
/// large-screen widths, saves a screenshot of each (TestResults/screenshots) and fails on any console
/// error, such as a Content-Security-Policy violation or a script error.
/// </summary>
public sealed class EveryPageInTheBrowserTests(Chromium chromium) : IAsyncLifetime
{
    private static readonly string[] SignedInPages = ["/", "/targets", "/runs", "/audit", "/admin", "/admin/users", "/account/password", "/account/tokens"];

    private readonly UpgradeConsoleApplicationFactory _app = new();

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
    }

    [Theory]
    [InlineData("light", 1366)]
    [InlineData("dark", 2560)]
    public async Task EveryPage_RendersWithoutConsoleErrors(string theme, int width)
    {
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl, theme);
        await browser.Page.SetViewportSizeAsync(width, 900);
        await browser.Page.GotoAsync("/account/login");
        await browser.ScreenshotAsync($"{theme}-{width}-login");
        await SigningInTests.SignInAsync(browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);

        foreach (var path in SignedInPages)
        {
            await browser.Page.GotoAsync(path);
            await Assertions.Expect(browser.Page.Locator("h1")).ToBeVisibleAsync();
            Assert.Equal(theme, await browser.Page.Locator("html").GetAttributeAsync("data-bs-theme"));
            var name = path == "/" ? "overview" : path.Trim('/').Replace('/', '-');
            await browser.ScreenshotAsync($"{theme}-{width}-{name}");
        }

        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));

        // An unknown address answers 404 with the dashboard's own page (Chromium logs the 404 itself).
        var missing = await browser.Page.GotoAsync("/no-such-page");
        Assert.Equal(404, missing!.Status);
        await Assertions.Expect(browser.Page.Locator("h1")).ToHaveTextAsync("Not found");
        await browser.ScreenshotAsync($"{theme}-{width}-not-found");
    }

    [Fact]
    public async Task ThemeToggle_SwitchesAndIsRememberedAcrossPages()
    {
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl, "light");
        await SigningInTests.SignInAsync(browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        var html = browser.Page.Locator("html");
        await Assertions.Expect(html).ToHaveAttributeAsync("data-bs-theme", "light");

        // The toggle works once site.js has run: wait for the page's load before clicking (a loaded machine was slower).
        await browser.Page.WaitForLoadStateAsync(Microsoft.Playwright.LoadState.Load);
        await browser.Page.ClickAsync("#uc-theme-toggle");
        await Assertions.Expect(html).ToHaveAttributeAsync("data-bs-theme", "dark");
        await browser.Page.GotoAsync("/admin/users");
        await Assertions.Expect(html).ToHaveAttributeAsync("data-bs-theme", "dark");
        // The server renders the remembered theme itself, so the page never flashes the other one.
        var served = await (await browser.Page.APIRequest.GetAsync("/admin/users")).TextAsync();
        Assert.Contains("data-bs-theme=\"dark\"", served, StringComparison.Ordinal);

        await browser.Page.ClickAsync("#uc-theme-toggle");
        await browser.Page.ReloadAsync();
        await Assertions.Expect(html).ToHaveAttributeAsync("data-bs-theme", "light");
    }

    [Fact]
    public async Task NavigationCollapses_OnANarrowScreen()
    {
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await browser.Page.SetViewportSizeAsync(600, 900);
        await Assertions.Expect(browser.Page.Locator("a.nav-link[href='/runs']")).ToBeHiddenAsync();
        await browser.Page.ClickAsync(".navbar-toggler");
        await Assertions.Expect(browser.Page.Locator("a.nav-link[href='/runs']")).ToBeVisibleAsync();
        await browser.ScreenshotAsync("narrow-menu");
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
