using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Accounts;

/// <summary>Signing in and out, lockout after repeated failures, and the rate limit on the login form.</summary>
public sealed class SigningInTests(Chromium chromium) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
    }

    [Fact]
    public async Task Login_WrongThenRightPassword_SignsInAndReturnsToRequestedPage()
    {
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;

        await page.GotoAsync("/admin/users");
        Assert.StartsWith(_app.BaseUrl + "/account/login?ReturnUrl=", page.Url, StringComparison.Ordinal);
        await browser.ScreenshotAsync("login");

        await page.FillAsync("#email", UpgradeConsoleApplicationFactory.AdminEmail);
        await page.FillAsync("#password", "not the password");
        await page.ClickAsync("#login-submit");
        await Assertions.Expect(page.GetByTestId("login-error")).ToHaveTextAsync("E-mail or password is wrong.");

        await page.FillAsync("#email", UpgradeConsoleApplicationFactory.AdminEmail);
        await page.FillAsync("#password", UpgradeConsoleApplicationFactory.AdminPassword);
        await page.ClickAsync("#login-submit");
        await page.WaitForURLAsync(_app.BaseUrl + "/admin/users");
        await Assertions.Expect(page.GetByTestId("users-table")).ToBeVisibleAsync();
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    [Fact]
    public async Task Logout_EndsTheSession()
    {
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await SignInAsync(page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);

        await page.WaitForInteractiveAsync();
        await page.ClickAsync("#uc-user-menu");
        await page.ClickAsync("#uc-logout");
        await page.WaitForURLAsync(_app.BaseUrl + "/account/login");

        await page.GotoAsync("/");
        Assert.StartsWith(_app.BaseUrl + "/account/login", page.Url, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FiveWrongPasswords_LockTheAccount_UntilAnAdminUnlocksIt()
    {
        var admin = await _app.LoginAsAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        var password = await _app.CreateUserAsync(admin, "clumsy@example.org", "Operator");

        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await page.GotoAsync("/account/login");
        for (var i = 0; i < 5; i++)
        {
            await page.FillAsync("#email", "clumsy@example.org");
            await page.FillAsync("#password", $"wrong {i}");
            await page.ClickAsync("#login-submit");
            await Assertions.Expect(page.GetByTestId("login-error")).ToBeVisibleAsync();
        }

        await Assertions.Expect(page.GetByTestId("login-error")).ToContainTextAsync("locked");
        // Even the right password is refused while locked.
        await page.FillAsync("#email", "clumsy@example.org");
        await page.FillAsync("#password", password);
        await page.ClickAsync("#login-submit");
        await Assertions.Expect(page.GetByTestId("login-error")).ToContainTextAsync("locked");

        // An Admin unlocks it from the users page (interactive, no reload).
        await using var adminBrowser = await chromium.NewSessionAsync(_app.BaseUrl);
        await SignInAsync(adminBrowser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await adminBrowser.GotoInteractiveAsync("/admin/users");
        var row = adminBrowser.Page.Locator("[data-testid=user-row][data-email='clumsy@example.org']");
        await Assertions.Expect(row.GetByTestId("status")).ToHaveTextAsync("Locked");
        await row.GetByTestId("action-unlock").ClickAsync();
        await Assertions.Expect(row.GetByTestId("status")).ToHaveTextAsync("Active");

        await page.FillAsync("#email", "clumsy@example.org");
        await page.FillAsync("#password", password);
        await page.ClickAsync("#login-submit");
        await page.WaitForURLAsync(_app.BaseUrl + "/");
        await Assertions.Expect(page.GetByTestId("current-user")).ToHaveTextAsync("clumsy@example.org");
    }

    internal static async Task SignInAsync(IPage page, string email, string password)
    {
        await page.GotoAsync("/account/login");
        await page.FillAsync("#email", email);
        await page.FillAsync("#password", password);
        await page.ClickAsync("#login-submit");
        await Assertions.Expect(page.GetByTestId("current-user")).ToHaveTextAsync(email);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
