using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Accounts;

/// <summary>An Admin adds people, changes their role, disables them and resets their password in the browser.</summary>
public sealed class ManagingUsersTests(Chromium chromium) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private BrowserSession _admin = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
        _admin = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(_admin.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
    }

    [Fact]
    public async Task Admin_CreatesOperator_WhoSignsInAndSeesNoAdminPages()
    {
        var password = await AddUserInBrowserAsync("olga@example.org", "Operator");

        await using var olga = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(olga.Page, "olga@example.org", password);
        await Assertions.Expect(olga.Page.GetByTestId("current-role")).ToHaveTextAsync("Operator");
        await Assertions.Expect(olga.Page.Locator("#uc-nav a[href='/admin']")).ToHaveCountAsync(0);

        await olga.Page.GotoAsync("/admin/users");
        await Assertions.Expect(olga.Page.GetByTestId("access-denied")).ToBeVisibleAsync();
    }

    [Fact]
    public async Task RoleChange_AppliesToTheOpenSession_AtItsNextRequest()
    {
        var password = await AddUserInBrowserAsync("rita@example.org", "Operator");
        await using var rita = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(rita.Page, "rita@example.org", password);

        var row = Row("rita@example.org");
        await row.GetByTestId("role-select").SelectOptionAsync("Viewer");
        await row.GetByTestId("role-save").ClickAsync();
        await Assertions.Expect(row.GetByTestId("row-message")).ToHaveTextAsync("Role set to Viewer.");

        await rita.Page.ReloadAsync();
        await Assertions.Expect(rita.Page.GetByTestId("current-role")).ToHaveTextAsync("Viewer");
    }

    [Fact]
    public async Task RoleChangeAndDisabling_ReachAnOpenInteractiveTab_WithinAMinute()
    {
        var password = await AddUserInBrowserAsync("ines@example.org", "Operator");
        await using var ines = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(ines.Page, "ines@example.org", password);
        await ines.WaitForInteractiveAsync();
        await Assertions.Expect(ines.Page.GetByTestId("current-role")).ToHaveTextAsync("Operator");

        var row = Row("ines@example.org");
        await row.GetByTestId("role-select").SelectOptionAsync("Viewer");
        await row.GetByTestId("role-save").ClickAsync();
        await Assertions.Expect(row.GetByTestId("row-message")).ToHaveTextAsync("Role set to Viewer.");

        // Nobody reloads Ines's tab: its circuit compares her with the database (every 30 s), ends its
        // authentication when she changed, and the page reloads under her current role.
        var withinAMinute = new LocatorAssertionsToHaveTextOptions { Timeout = 60_000 };
        await Assertions.Expect(ines.Page.GetByTestId("current-role")).ToHaveTextAsync("Viewer", withinAMinute);

        await row.GetByTestId("action-disable").ClickAsync();
        await ConfirmAsync("Disable");
        await Assertions.Expect(row.GetByTestId("status")).ToHaveTextAsync("Disabled");
        await ines.Page.WaitForURLAsync("**/account/login**", new() { Timeout = 60_000 });
    }

    [Fact]
    public async Task Disable_EndsOpenSessionAndRefusesLogin_EnableRestoresIt()
    {
        var password = await AddUserInBrowserAsync("dora@example.org", "Viewer");
        await using var dora = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(dora.Page, "dora@example.org", password);

        var row = Row("dora@example.org");
        await row.GetByTestId("action-disable").ClickAsync();
        await ConfirmAsync("Disable");
        await Assertions.Expect(row.GetByTestId("status")).ToHaveTextAsync("Disabled");

        await dora.Page.GotoAsync("/targets");
        Assert.StartsWith(_app.BaseUrl + "/account/login", dora.Page.Url, StringComparison.Ordinal);
        await dora.Page.FillAsync("#email", "dora@example.org");
        await dora.Page.FillAsync("#password", password);
        await dora.Page.ClickAsync("#login-submit");
        await Assertions.Expect(dora.Page.GetByTestId("login-error")).ToContainTextAsync("disabled");

        await row.GetByTestId("action-enable").ClickAsync();
        await Assertions.Expect(row.GetByTestId("status")).ToHaveTextAsync("Active");
        await SigningInTests.SignInAsync(dora.Page, "dora@example.org", password);
    }

    [Fact]
    public async Task ResetPassword_ShowsNewPasswordOnce_OldOneStopsWorking()
    {
        var oldPassword = await AddUserInBrowserAsync("pat@example.org", "Viewer");
        var row = Row("pat@example.org");
        await row.GetByTestId("action-reset-password").ClickAsync();
        await ConfirmAsync("Reset password");
        var newPassword = (await row.GetByTestId("generated-password").TextContentAsync())!.Trim();
        Assert.NotEqual(oldPassword, newPassword);
        Assert.True(newPassword.Length >= 12);

        await using var pat = await chromium.NewSessionAsync(_app.BaseUrl);
        await pat.Page.GotoAsync("/account/login");
        await pat.Page.FillAsync("#email", "pat@example.org");
        await pat.Page.FillAsync("#password", oldPassword);
        await pat.Page.ClickAsync("#login-submit");
        await Assertions.Expect(pat.Page.GetByTestId("login-error")).ToBeVisibleAsync();
        await SigningInTests.SignInAsync(pat.Page, "pat@example.org", newPassword);

        // Shown once: a reload of the users page does not show it again.
        await _admin.Page.ReloadAsync();
        await _admin.WaitForInteractiveAsync();
        await Assertions.Expect(_admin.Page.GetByTestId("generated-password")).ToHaveCountAsync(0);
    }

    [Fact]
    public async Task LastAdmin_CannotBeDisabledOrDemoted()
    {
        await _admin.GotoInteractiveAsync("/admin/users");
        var row = Row(UpgradeConsoleApplicationFactory.AdminEmail);

        await row.GetByTestId("action-disable").ClickAsync();
        await ConfirmAsync("Disable");
        await Assertions.Expect(row.GetByTestId("row-error")).ToContainTextAsync("last enabled Admin");
        await Assertions.Expect(row.GetByTestId("status")).ToHaveTextAsync("Active");

        await row.GetByTestId("role-select").SelectOptionAsync("Viewer");
        await row.GetByTestId("role-save").ClickAsync();
        await Assertions.Expect(row.GetByTestId("row-error")).ToContainTextAsync("last enabled Admin");
        await _admin.Page.ReloadAsync();
        await _admin.WaitForInteractiveAsync();
        await Assertions.Expect(_admin.Page.GetByTestId("current-role")).ToHaveTextAsync("Admin");
    }

    [Fact]
    public async Task CreateUser_WithTooShortPassword_ExplainsAndCreatesNobody()
    {
        await _admin.GotoInteractiveAsync("/admin/users");
        await _admin.Page.FillAsync("#new-email", "short@example.org");
        await _admin.Page.FillAsync("#new-password", "short");
        await _admin.Page.ClickAsync("#create-user");
        await Assertions.Expect(_admin.Page.GetByTestId("create-error")).ToContainTextAsync("at least 12 characters");
        await Assertions.Expect(Row("short@example.org")).ToHaveCountAsync(0);
    }

    /// <summary>Answers the page's confirmation dialog (a MudBlazor message box) with its action button.</summary>
    private Task ConfirmAsync(string verb) =>
        _admin.Page.Locator(".mud-dialog").GetByRole(AriaRole.Button, new() { Name = verb, Exact = true }).ClickAsync();

    private ILocator Row(string email) => _admin.Page.Locator($"[data-testid=user-row][data-email='{email}']");

    private async Task<string> AddUserInBrowserAsync(string email, string role)
    {
        var page = _admin.Page;
        await _admin.GotoInteractiveAsync("/admin/users");
        await page.FillAsync("#new-email", email);
        await page.SelectOptionAsync("#new-role", role);
        await page.ClickAsync("#create-user");
        await Assertions.Expect(page.GetByTestId("user-created")).ToContainTextAsync(email);
        await _admin.ScreenshotAsync("admin-users");
        var password = (await page.GetByTestId("generated-password").TextContentAsync())!.Trim();
        await Assertions.Expect(Row(email).GetByTestId("status")).ToHaveTextAsync("Active");
        return password;
    }

    public async ValueTask DisposeAsync()
    {
        await _admin.DisposeAsync();
        await _app.DisposeAsync();
    }
}
