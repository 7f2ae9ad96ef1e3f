using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Overview;

/// <summary>
/// The landing page shows every target with its product, installed version, last preflight and active
/// or last run, blocked targets first, and the recent audit history; it follows changes without a reload.
/// </summary>
public sealed class WatchingTheFleetTests(Chromium chromium) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
    }

    [Fact]
    public async Task Overview_PutsBlockedTargetsFirst_AndFollowsARunWithoutAReload()
    {
        var (runId, _) = await RunSeed.AddRunningRunAsync(_app.Services, TimeProvider.System.GetUtcNow().AddMinutes(-3),
            ("backup", "Back up", PhaseState.Succeeded), ("pip-install", "Install", PhaseState.Running), ("restart", "Restart", PhaseState.Pending));
        var blockedId = await AddTargetAsync("zz-blocked", HostKeyState.Mismatch);
        await AddTargetAsync("aa-quiet", HostKeyState.Pinned);
        await WithDatabaseAsync(async db =>
        {
            db.PreflightRuns.Add(new PreflightRun { TargetId = blockedId, At = TimeProvider.System.GetUtcNow(), Actor = "test", Failed = 2, Warnings = 1 });
            await db.SaveChangesAsync();
        });

        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await browser.WaitForInteractiveAsync();
        var rows = browser.Page.GetByTestId("overview-target");

        // Blocked first (though last by name), then the target with a run under way, then the rest.
        await Assertions.Expect(rows).ToHaveCountAsync(3);
        Assert.Equal("zz-blocked", await rows.Nth(0).GetAttributeAsync("data-name"));
        Assert.Equal("true", await rows.Nth(0).GetAttributeAsync("data-blocked"));
        Assert.StartsWith("seeded-", await rows.Nth(1).GetAttributeAsync("data-name"), StringComparison.Ordinal);
        Assert.Equal("aa-quiet", await rows.Nth(2).GetAttributeAsync("data-name"));
        await Assertions.Expect(rows.Nth(0).GetByTestId("overview-preflight")).ToContainTextAsync("2 failing, 1 warning(s)");
        await Assertions.Expect(rows.Nth(2).GetByTestId("overview-run")).ToHaveTextAsync("none");
        var running = rows.Nth(1);
        await Assertions.Expect(running.GetByTestId("run-state")).ToHaveTextAsync("Running");
        await Assertions.Expect(running.GetByTestId("overview-phases")).ToHaveTextAsync("1/3 phases");
        await Assertions.Expect(browser.Page.GetByTestId("overview-event").First).ToBeVisibleAsync();
        await Assertions.Expect(browser.Page.GetByTestId("overview-events")).ToContainTextAsync("account.login");
        await browser.ScreenshotAsync("overview-fleet");

        // The run finishes: the open page shows it by itself, in the same document (no reload).
        await browser.Page.EvaluateAsync("() => { window.ucSamePage = true; }");
        await WithDatabaseAsync(async db =>
        {
            var run = await db.Runs.Include(r => r.Phases).SingleAsync(r => r.Id == runId);
            run.Phases.ForEach(p => p.State = PhaseState.Succeeded);
            run.State = RunState.Succeeded;
            run.ActiveTargetId = null;
            run.EndedAt = TimeProvider.System.GetUtcNow();
            await db.SaveChangesAsync();
        });
        var finished = browser.Page.Locator($"[data-testid=overview-target]:has(a[href='/runs/{runId}'])");
        await Assertions.Expect(finished.GetByTestId("run-state")).ToHaveTextAsync("Succeeded");
        await Assertions.Expect(finished.GetByTestId("overview-phases")).ToHaveTextAsync("3/3 phases");
        await Assertions.Expect(finished.GetByTestId("overview-installed")).ToHaveTextAsync("2.16.7");
        Assert.True(await browser.Page.EvaluateAsync<bool>("() => window.ucSamePage === true"), "the page reloaded");
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    [Fact]
    public async Task Overview_WithNoTargets_SaysWhereToAddThem()
    {
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await Assertions.Expect(browser.Page.GetByTestId("overview-no-targets")).ToBeVisibleAsync();
    }

    private async Task<int> AddTargetAsync(string name, HostKeyState hostKey)
    {
        var target = new Target { Name = name, Host = "127.0.0.1", SshUser = "nobody", WorkingDirectory = "/srv/fractal", HostKeyState = hostKey };
        await WithDatabaseAsync(async db =>
        {
            db.Targets.Add(target);
            await db.SaveChangesAsync();
        });
        return target.Id;
    }

    private async Task WithDatabaseAsync(Func<AppDbContext, Task> work)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        await work(scope.ServiceProvider.GetRequiredService<AppDbContext>());
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
