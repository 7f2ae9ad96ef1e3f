using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// An ordinary release (2.16.6 → 2.16.7) with the generic runbook, on a target that requires a
/// second person's approval: the planner cannot approve, the approver cannot start, a Viewer can do
/// neither; once approved and started by the planner it runs to Succeeded without update-db-data.
/// </summary>
public sealed class ReleaseUpgradeWithApprovalTests(Chromium chromium, SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private FractalTarget _fractal = default!;
    private HttpClient _admin = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
        _fractal = await FractalTarget.CreateAsync(_app, _admin, ssh, postgres);
        await _fractal.Host.BuildWheelAsync("2.16.7");
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var target = await db.Targets.SingleAsync(t => t.Id == _fractal.TargetId);
        target.RequireApproval = true;
        await db.SaveChangesAsync();
    }

    [Fact]
    public async Task ASecondPersonApproves_ThePlannerStarts_AndTheReleaseIsInstalled()
    {
        var plannerPassword = await _app.CreateUserAsync(_admin, "olga@example.org", "Operator");
        var approverPassword = await _app.CreateUserAsync(_admin, "pavel@example.org", "Operator");
        _ = await _app.CreateUserAsync(_admin, "vic@example.org", "Viewer");

        // Olga plans the release in the browser: the data migration is not chosen, so that phase is skipped.
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await Accounts.SigningInTests.SignInAsync(page, "olga@example.org", plannerPassword);
        // She chooses while the page is still looking at the target: the default plan arriving afterwards must not put
        // back the default runbook over her choice. The test holds the target's schema table (the plan reads the revision
        // from it), so the page is still looking when she chooses, however fast the rest of the discovery is.
        await using var hold = await TableLock.HoldAsync(_fractal.DatabaseConnection, "alembic_version", "ACCESS EXCLUSIVE");

        await page.GotoInteractiveAsync($"/targets/{_fractal.TargetId}/plan");
        await Assertions.Expect(page.GetByTestId("plan-loading")).ToBeVisibleAsync();
        await page.SelectOptionAsync("#runbook", "fractal-release");
        await page.FillAsync("#to", "2.16.7");
        await hold.ReleaseAsync();
        await Assertions.Expect(page.GetByTestId("plan-loading")).ToHaveCountAsync(0);
        await Assertions.Expect(page.Locator("#runbook")).ToHaveValueAsync("fractal-release");
        await Assertions.Expect(page.Locator("#to")).ToHaveValueAsync("2.16.7");
        await page.GetByRole(AriaRole.Button, new() { Name = "Show the plan" }).ClickAsync();
        await Assertions.Expect(page.GetByTestId("plan-versions")).ToHaveTextAsync("2.16.6 → 2.16.7");
        await Assertions.Expect(page.Locator("[data-testid=plan-phase][data-key=update-db-data]")).ToHaveAttributeAsync("data-chosen", "false");
        await Assertions.Expect(page.Locator("[data-testid=plan-phase][data-key=pip-install]")).ToContainTextAsync("fractal-server==2.16.7");
        await Assertions.Expect(page.Locator("[data-testid=plan-phase][data-key=set-db] [data-testid=point-of-no-return]")).ToBeVisibleAsync();
        await page.ClickAsync("#create-run");
        await page.WaitForAddressAsync(new Regex("/runs/[0-9]+$"));
        var runId = int.Parse(page.Url.Split('/').Last(), System.Globalization.CultureInfo.InvariantCulture);
        await Assertions.Expect(page.Locator("[data-testid=run-phase][data-key=update-db-data]")).ToHaveAttributeAsync("data-state", "Skipped");

        // Olga sees that she cannot approve her own run, and has nothing to start yet.
        await Assertions.Expect(page.GetByTestId("approval-wait")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#action-approve")).ToHaveCountAsync(0);
        await Assertions.Expect(page.Locator("#action-start")).ToHaveCountAsync(0);

        // The rules hold in the service too, whatever the page shows (the role is judged in the database).
        Assert.Contains("Nobody approves their own run", (await ActAsync("olga@example.org", runId, "approve")).Error, StringComparison.Ordinal);
        Assert.Contains("needs a second person's approval", (await ActAsync("olga@example.org", runId, "start")).Error, StringComparison.Ordinal);
        foreach (var action in new[] { "approve", "start" })
        {
            // A Viewer is refused before anything happens.
            var denied = await Assert.ThrowsAsync<AccessDeniedException>(() => ActAsync("vic@example.org", runId, action));
            Assert.Contains("Your role (Viewer) does not allow this", denied.Message, StringComparison.Ordinal);
        }

        // Pavel approves on his run page; then he may not start it himself.
        await using (var pavel = await chromium.NewSessionAsync(_app.BaseUrl))
        {
            await Accounts.SigningInTests.SignInAsync(pavel.Page, "pavel@example.org", approverPassword);
            await pavel.GotoInteractiveAsync($"/runs/{runId}");
            await pavel.Page.ConfirmAsync("approve");
            await Assertions.Expect(pavel.Page.Locator("#action-approve")).ToHaveCountAsync(0);
            await Assertions.Expect(pavel.Page.Locator("#action-start")).ToHaveCountAsync(0);
        }

        Assert.Contains("cannot also start", (await ActAsync("pavel@example.org", runId, "start")).Error, StringComparison.Ordinal);

        // Olga starts it from the page (it shows the approval) and it runs to the end.
        // Her open page follows the approval without a reload.
        await Assertions.Expect(page.Locator("#main")).ToContainTextAsync("approved by pavel@example.org");
        await page.ConfirmAsync("start");
        await Assertions.Expect(page.GetByTestId("run-state")).Not.ToHaveTextAsync(new Regex("^(Planned|Running)$"), new() { Timeout = 180_000 });
        Assert.True(await page.GetByTestId("run-state").TextContentAsync() == "Succeeded",
            await (await _admin.GetAsync($"/runs/{runId}/log.txt")).Content.ReadAsStringAsync());
        foreach (var key in new[] { "preflight", "backup", "stop", "pip-install", "set-db", "start" })
        {
            await Assertions.Expect(page.Locator($"[data-testid=run-phase][data-key={key}]")).ToHaveAttributeAsync("data-state", "Succeeded");
        }

        var log = await (await _admin.GetAsync($"/runs/{runId}/log.txt")).Content.ReadAsStringAsync();
        Assert.Contains("Successfully installed fractal-server-2.16.7", log, StringComparison.Ordinal);
        Assert.Contains("/api/alive/ reports 2.16.7", log, StringComparison.Ordinal);
        Assert.DoesNotContain("[update-db-data]", log, StringComparison.Ordinal);
        Assert.DoesNotContain("(yes/no)", log, StringComparison.Ordinal);
        // The 2.17-only checks fail on this unprepared 2.16 target, but do not hold up a release upgrade.
        Assert.Contains("fail (not required by this runbook)", log, StringComparison.Ordinal);
        Assert.Equal("981d588fe248", await _fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));

        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Action == "run.approve" && e.Actor == "pavel@example.org");
        Assert.Contains(events, e => e.Action == "run.start" && e.Actor == "olga@example.org");
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    /// <summary>Approves or starts as <paramref name="email"/> through the run page's service.</summary>
    private Task<RunResult> ActAsync(string email, int runId, string action) =>
        _app.AsAsync<RunService, RunResult>(email, (runs, actor) => action == "approve" ? runs.ApproveAsync(runId, actor, CancellationToken.None) : runs.StartAsync(runId, actor, CancellationToken.None));

    public async ValueTask DisposeAsync()
    {
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
