using System.Net;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Accounts;

/// <summary>A new dashboard prints a one-time setup link; the first person to use it becomes Admin.</summary>
public sealed class FirstAdminSetupTests(Chromium chromium) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();

    public ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task SetupLink_IsPrintedOnTheConsole_ButNotLoggedAtAShippedLevel()
    {
        // A real process with the shipped configuration and the default console logger: the link is
        // printed once (stdout), and the logged warning only says where to find it.
        var data = Directory.CreateTempSubdirectory("uc-setup-").FullName;
        try
        {
            await using var dashboard = await DashboardProcess.StartAsync(data);
            await Eventually.TrueAsync(() => Task.FromResult(dashboard.Output.Contains("printed on the dashboard's standard output", StringComparison.Ordinal)),
                TimeSpan.FromSeconds(30), () => dashboard.Output);
            var output = dashboard.Output;
            Assert.Contains("printed on the dashboard's standard output", output, StringComparison.Ordinal);
            Assert.Single(System.Text.RegularExpressions.Regex.Matches(output, "/setup\\?token="));
            Assert.DoesNotContain("Create the first Admin at", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }

        // In process, the link reaches a logger only at Debug under its own category.
        var token = await _app.ReadSetupTokenAsync();
        Assert.All(_app.Logs.Lines.Where(l => l.Contains(token, StringComparison.Ordinal)),
            l => Assert.StartsWith("Debug UpgradeConsole.SetupLink:", l, StringComparison.Ordinal));
    }

    [Fact]
    public async Task SetupLink_UsedInBrowser_CreatesAdminAndDies()
    {
        var token = await _app.ReadSetupTokenAsync();
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;

        await page.GotoAsync("/account/login");
        await Assertions.Expect(page.GetByText("use the setup link printed by the dashboard")).ToBeVisibleAsync();

        await page.GotoAsync($"/setup?token={token}");
        await browser.ScreenshotAsync("setup");
        await page.FillAsync("#email", "first@example.org");
        await page.FillAsync("#password", "a long enough password");
        await page.FillAsync("#confirm", "a long enough password");
        await page.ClickAsync("#setup-submit");

        await page.WaitForURLAsync(_app.BaseUrl + "/");
        await Assertions.Expect(page.GetByTestId("current-user")).ToHaveTextAsync("first@example.org");
        await Assertions.Expect(page.GetByTestId("current-role")).ToHaveTextAsync("Admin");

        // The token is spent: the same link now explains itself and creates nothing.
        await using var other = await chromium.NewSessionAsync(_app.BaseUrl);
        await other.Page.GotoAsync($"/setup?token={token}");
        await Assertions.Expect(other.Page.GetByTestId("setup-invalid")).ToBeVisibleAsync();
        await other.Page.GotoAsync("/account/login");
        await Assertions.Expect(other.Page.GetByText("use the setup link printed by the dashboard")).ToHaveCountAsync(0);
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    [Fact]
    public async Task SetupPost_WithWrongToken_CreatesNobody()
    {
        var token = await _app.ReadSetupTokenAsync();
        var client = _app.CreateBrowserLikeClient();
        var page = await client.GetStringAsync($"/setup?token={token}");
        var response = await client.PostAsync("/setup?token=forged", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = HtmlForms.AntiforgeryToken(page),
            ["_handler"] = "setup",
            ["token"] = "forged",
            ["Input.Email"] = "mallory@example.org",
            ["Input.Password"] = "a long enough password",
            ["Input.Confirm"] = "a long enough password",
        }));

        // The page renders no setup form for a forged token, so the post names a form that is not there.
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        // The real token still works, so nobody was created by the forged attempt.
        await _app.CreateFirstAdminAsync();
    }

    [Fact]
    public async Task SetupPost_WithoutAntiforgeryToken_IsRejected()
    {
        var token = await _app.ReadSetupTokenAsync();
        var client = _app.CreateBrowserLikeClient();
        var response = await client.PostAsync($"/setup?token={token}", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["_handler"] = "setup",
            ["token"] = token,
            ["Input.Email"] = "mallory@example.org",
            ["Input.Password"] = "a long enough password",
            ["Input.Confirm"] = "a long enough password",
        }));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await _app.CreateFirstAdminAsync();
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
