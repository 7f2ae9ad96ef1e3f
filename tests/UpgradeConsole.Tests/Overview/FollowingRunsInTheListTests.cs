using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Overview;

/// <summary>
/// The interactive runs list: filters in the address, applied in the database, and a run's state
/// followed on an open page without a reload. Runs are seeded straight into the database (RunSeed).
/// </summary>
public sealed class FollowingRunsInTheListTests(Chromium chromium) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
    }

    [Fact]
    public async Task AViewer_FiltersRuns_AndSeesAStateChangeWithoutReloading()
    {
        var (first, _) = await RunSeed.AddRunningRunAsync(_app.Services, null, ("backup", "Back up", PhaseState.Succeeded), ("pip-install", "Install", PhaseState.Running));
        var (second, _) = await RunSeed.AddRunningRunAsync(_app.Services);
        var password = await _app.CreateUserAsync(await _app.LoginAsAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword), "vera@example.org", "Viewer");
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await SigningInTests.SignInAsync(page, "vera@example.org", password);
        await browser.GotoInteractiveAsync("/runs");

        var firstRow = page.Locator($"tr:has([data-testid=run-row-id][data-id='{first}'])");
        await Assertions.Expect(page.Locator("tr:has([data-testid=run-row-id])")).ToHaveCountAsync(2);
        await Assertions.Expect(firstRow.GetByTestId("run-phases")).ToHaveTextAsync("1 / 2");
        await Assertions.Expect(firstRow.GetByTestId("run-state")).ToHaveTextAsync("Running");
        await browser.ScreenshotAsync("runs-list");

        // The run fails elsewhere (the engine writes the database): the open page follows.
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var run = await db.Runs.SingleAsync(r => r.Id == first, TestContext.Current.CancellationToken);
            run.State = RunState.Failed;
            await db.SaveChangesAsync(TestContext.Current.CancellationToken);
        }

        await Assertions.Expect(firstRow.GetByTestId("run-state")).ToHaveTextAsync("Failed", new() { Timeout = 30_000 });

        // Filters: by state, in the address; a window before anything happened is empty.
        await page.SelectOptionAsync("#state", "Failed");
        await page.ClickAsync("#runs-apply");
        await page.WaitForAddressAsync(new Regex(@"/runs\?state=Failed$"));
        await Assertions.Expect(page.Locator($"[data-testid=run-row-id][data-id='{second}']")).ToHaveCountAsync(0);
        await Assertions.Expect(page.Locator("tr:has([data-testid=run-row-id])")).ToHaveCountAsync(1);
        await browser.GotoInteractiveAsync("/runs?to=2000-01-01");
        await Assertions.Expect(page.GetByTestId("runs-empty")).ToContainTextAsync("No run matches");
        await page.ClickAsync("#runs-reset");
        await Assertions.Expect(page.Locator("tr:has([data-testid=run-row-id])")).ToHaveCountAsync(2);
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
