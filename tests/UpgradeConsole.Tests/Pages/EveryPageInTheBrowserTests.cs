using System.Text.RegularExpressions;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Tests.Security;

namespace UpgradeConsole.Tests.Pages;

/// <summary>
/// Opens every page in Chromium as an Admin, in the light and the dark theme and at laptop and
/// large-screen widths, reads each page's Content-Security-Policy, waits for the interactive ones to
/// come alive, saves a screenshot of each (TestResults/screenshots) and fails on any console error,
/// such as a Content-Security-Policy violation or a script error.
/// </summary>
public sealed class EveryPageInTheBrowserTests(Chromium chromium) : IAsyncLifetime
{
    /// <summary>Pages and whether they are interactive (MudBlazor over a circuit) or still static.</summary>
    private static readonly (string Path, bool Interactive)[] SignedInPages =
    [
        ("/", true), ("/targets", true), ("/runs", true), ("/audit", true), ("/admin", true), ("/admin/users", true),
        ("/account/password", false), ("/account/tokens", true), ("/account/access-denied", true),
    ];

    private readonly UpgradeConsoleApplicationFactory _app = new();
    private (string Path, bool Interactive)[] _runPages = [];

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
        // A run with a log (its target is never reached): the preflight, plan and run pages of it.
        var (runId, phases) = await RunSeed.AddRunningRunAsync(_app.Services, TimeProvider.System.GetUtcNow().AddMinutes(-1),
            ("backup", "Back up the database", UpgradeConsole.Web.Runs.PhaseState.Succeeded), ("pip-install", "Install the new version", UpgradeConsole.Web.Runs.PhaseState.Running));
        var writer = new UpgradeConsole.Web.Runs.RunLogWriter(
            Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Microsoft.Extensions.DependencyInjection.IServiceScopeFactory>(_app.Services),
            runId, [], TimeProvider.System);
        for (var i = 1; i <= 50; i++)
        {
            await writer.WriteAsync(phases[i <= 20 ? 0 : 1], i == 30 ? "\u001b[31mERROR: a red line\u001b[0m" : $"line {i}");
        }

        await writer.FlushAsync();
        var targetId = await _app.AsAsync<UpgradeConsole.Web.Runs.RunService, int>(UpgradeConsoleApplicationFactory.AdminEmail,
            async (runs, actor) => (await runs.ViewAsync(runId, actor))!.Run.TargetId);
        _runPages = [($"/targets/{targetId}/preflight", true), ($"/targets/{targetId}/plan", true), ($"/runs/{runId}", true)];
    }

    [Theory]
    [InlineData("light", 1366)]
    [InlineData("dark", 2560)]
    public async Task EveryPage_RendersWithoutConsoleErrors(string theme, int width)
    {
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl, theme);
        await browser.Page.SetViewportSizeAsync(width, 900);
        var login = await browser.Page.GotoAsync("/account/login");
        SecurityHeadersTests.AssertStrictPolicy(await login!.HeaderValueAsync("content-security-policy") ?? "");
        await AssertMudBlazorStylesOnlyAsync(browser.Page);
        await browser.ScreenshotAsync($"{theme}-{width}-login");
        await SigningInTests.SignInAsync(browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);

        foreach (var (path, interactive) in SignedInPages.Concat(_runPages))
        {
            var response = await browser.Page.GotoAsync(path);
            SecurityHeadersTests.AssertStrictPolicy(await response!.HeaderValueAsync("content-security-policy") ?? "");
            if (interactive)
            {
                await browser.WaitForInteractiveAsync();
                await Assertions.Expect(browser.Page.Locator("#uc-app")).ToHaveAttributeAsync("data-theme", theme);
            }

            await Assertions.Expect(browser.Page.Locator("h1")).ToBeVisibleAsync();
            Assert.Equal(theme, await browser.Page.Locator("html").GetAttributeAsync("data-theme"));
            await AssertMudBlazorStylesOnlyAsync(browser.Page);
            var name = path == "/" ? "overview" : System.Text.RegularExpressions.Regex.Replace(path.Trim('/'), "[0-9]+", "n").Replace('/', '-');
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
    public async Task ThemeChoice_SwitchesAtOnceAndIsRememberedAcrossPages()
    {
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl, "light");
        await SigningInTests.SignInAsync(browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await browser.WaitForInteractiveAsync();
        var html = browser.Page.Locator("html");
        var app = browser.Page.Locator("#uc-app");
        await Assertions.Expect(app).ToHaveAttributeAsync("data-theme", "light");

        await browser.Page.ClickAsync("#uc-theme-toggle");
        await browser.Page.ClickAsync("#uc-theme-dark");
        await Assertions.Expect(app).ToHaveAttributeAsync("data-theme", "dark");
        await Assertions.Expect(html).ToHaveAttributeAsync("data-theme", "dark");

        // A static page and a fresh load of the interactive one come dark from the server, with no flash.
        await browser.Page.GotoAsync("/runs");
        await Assertions.Expect(html).ToHaveAttributeAsync("data-theme", "dark");
        var served = await (await browser.Page.APIRequest.GetAsync("/")).TextAsync();
        Assert.Contains("<html lang=\"en\" data-theme=\"dark\"", served, StringComparison.Ordinal);
        Assert.Matches("id=\"uc-app\"[^>]*data-theme=\"dark\"", served);

        // "System" follows the browser's scheme (light here).
        await browser.GotoInteractiveAsync("/");
        await Assertions.Expect(app).ToHaveAttributeAsync("data-theme", "dark");
        await browser.Page.ClickAsync("#uc-theme-toggle");
        await browser.Page.ClickAsync("#uc-theme-system");
        await Assertions.Expect(app).ToHaveAttributeAsync("data-theme", "light");
        await browser.Page.ReloadAsync();
        await browser.WaitForInteractiveAsync();
        await Assertions.Expect(app).ToHaveAttributeAsync("data-theme", "light");
        await Assertions.Expect(html).ToHaveAttributeAsync("data-theme", "light");

        // A static page (no circuit) has the same theme menu: a choice is saved and the page comes back in it.
        await browser.Page.GotoAsync("/account/password");
        var staticShell = browser.Page.Locator(".uc-static-app");
        await Assertions.Expect(staticShell).ToHaveAttributeAsync("data-theme", "light");
        await browser.Page.ClickAsync("#uc-theme-toggle");
        await browser.Page.ClickAsync("#uc-theme-dark");
        await Assertions.Expect(staticShell).ToHaveAttributeAsync("data-theme", "dark");
        await Assertions.Expect(html).ToHaveAttributeAsync("data-theme", "dark");
        await browser.GotoInteractiveAsync("/");
        await Assertions.Expect(app).ToHaveAttributeAsync("data-theme", "dark");
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    [Fact]
    public async Task NavigationDrawer_CollapsesOnANarrowScreen()
    {
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        await browser.Page.SetViewportSizeAsync(600, 900);
        await SigningInTests.SignInAsync(browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await browser.WaitForInteractiveAsync();
        var runs = browser.Page.Locator("#uc-nav a[href='/runs']");
        await Assertions.Expect(runs).Not.ToBeInViewportAsync();
        await browser.Page.ClickAsync("#uc-nav-toggle");
        await Assertions.Expect(runs).ToBeInViewportAsync();
        await browser.ScreenshotAsync("narrow-menu");

        // The drawer's links lead on; a page not moved to the interactive shell yet loads in full.
        await runs.ClickAsync();
        await browser.Page.WaitForAddressAsync(new Regex("/runs$"));
        await Assertions.Expect(browser.Page.Locator("h1")).ToHaveTextAsync("Runs");
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    /// <summary>Every page, static or interactive, is styled by MudBlazor alone: no Bootstrap, no htmx (issue 13).</summary>
    private static async Task AssertMudBlazorStylesOnlyAsync(Microsoft.Playwright.IPage page)
    {
        Assert.Equal(1, await page.Locator("link[rel=stylesheet][href*='_content/MudBlazor/MudBlazor.min.']").CountAsync());
        Assert.Equal(0, await page.Locator("link[href*='bootstrap'], script[src*='bootstrap'], script[src*='htmx']").CountAsync());
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
