using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Fractal;

namespace UpgradeConsole.Tests.Fractal;

/// <summary>
/// The users page answers a sort, a filter or a page from the last read of the target while it reads the users again
/// in the background, and draws the newer read when it lands: a fix made on the host (Fractal's own admin page, say)
/// shows on an open page without a click there. Results are kept for no time here, so every ask is past its time.
/// </summary>
public sealed class UsersPageFollowsChangesMadeElsewhereTests(Chromium chromium, SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new UpgradeConsoleApplicationFactory()
        .WithSetting("UpgradeConsole:TargetWork:ReadCacheFor", "00:00:00");

    private FractalTarget _fractal = default!;
    private BrowserSession _browser = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        var admin = await _app.CreateFirstAdminAsync();
        _fractal = await FractalTarget.CreateAsync(_app, admin, ssh, postgres);
        _browser = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(_browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
    }

    [Fact]
    public async Task AFixMadeOnTheHost_ShowsOnTheOpenPage_WithoutAClickThere()
    {
        var page = _browser.Page;
        await page.GotoAsync($"/targets/{_fractal.TargetId}/users");
        await page.WaitForInteractiveAsync();
        var bob = FixingUsersBeforeTheUpgradeTests.Row(page, "bob@example.org");
        await Assertions.Expect(bob.GetByTestId("outcome")).ToHaveAttributeAsync("data-outcome", "Blocks");
        await Assertions.Expect(page.GetByTestId("count-migrated")).ToContainTextAsync("4");

        await _fractal.ExecuteAsync("UPDATE user_settings SET project_dir = '/shared/projects/bob' WHERE id = 3");
        // Another page asks (here, the service as a page calls it): answered from the last read, read again behind it.
        var answered = await _app.AsAsync<FractalUsersService, UsersSlice>(UpgradeConsoleApplicationFactory.AdminEmail, (s, p) =>
            s.PageAsync(_fractal.TargetId, new UsersQuery(Search: "bob@"), p, CancellationToken.None, TimeSpan.FromMinutes(1)));
        Assert.Single(answered.Items);

        // The open page draws the newer read by itself.
        await Assertions.Expect(bob.GetByTestId("outcome")).ToHaveAttributeAsync("data-outcome", "Migrated");
        await Assertions.Expect(bob.GetByTestId("project-dir")).ToHaveTextAsync("/shared/projects/bob");
        await Assertions.Expect(page.GetByTestId("count-migrated")).ToContainTextAsync("5");
        Assert.True(_browser.Problems.Count == 0, string.Join('\n', _browser.Problems));
    }

    public async ValueTask DisposeAsync()
    {
        await _browser.DisposeAsync();
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
