using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Omero;

/// <summary>
/// OMERO.server 5.3.5 → 5.6.3 in the browser, as a facility's people do it: the Admin sees OMERO's own
/// settings on the target form; an Operator looks at the server (OMERO's facts, not Fractal's), plans the
/// upgrade (OMERO's section, the point of no return at the upgrade SQL), a second Operator approves, the
/// first starts it and watches the live log through the precheck and the upgrade SQL to the checklist,
/// ticks it, and the run succeeds with the database at OMERO5.4__0. Real sshd, PostgreSQL and Chromium,
/// the OMERO host double.
/// </summary>
public sealed class UpgradingOmeroInTheBrowserTests(Chromium chromium, SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private OmeroTarget _omero = default!;
    private HttpClient _admin = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
        _omero = await OmeroTarget.CreateAsync(_app, ssh, postgres);
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var target = await db.Targets.SingleAsync(t => t.Id == _omero.TargetId);
        target.RequireApproval = true;
        await db.SaveChangesAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _omero.DisposeAsync();
        _admin.Dispose();
        await _app.DisposeAsync();
    }

    [Fact]
    public async Task Operators_LookPlanApproveStartAndWatch_TheOmeroUpgrade_ToSuccess()
    {
        var plannerPassword = await _app.CreateUserAsync(_admin, "olga@example.org", "Operator");
        var approverPassword = await _app.CreateUserAsync(_admin, "pavel@example.org", "Operator");

        // The Admin's target form speaks OMERO: OMERODIR and the venv's Python, no env file or service commands.
        await using (var admin = await chromium.NewSessionAsync(_app.BaseUrl))
        {
            await Accounts.SigningInTests.SignInAsync(admin.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
            await admin.Page.GotoInteractiveAsync($"/targets/{_omero.TargetId}/edit");
            await Assertions.Expect(admin.Page.Locator("#workdir")).ToHaveValueAsync(_omero.Host.ServerDirectory);
            await Assertions.Expect(admin.Page.GetByText("OMERO.server path (OMERODIR", new() { Exact = false })).ToBeVisibleAsync();
            await Assertions.Expect(admin.Page.GetByText("Python of OMERO's venv", new() { Exact = false })).ToBeVisibleAsync();
            await Assertions.Expect(admin.Page.Locator("#envfile")).ToHaveCountAsync(0);
            await Assertions.Expect(admin.Page.Locator("#stop")).ToHaveCountAsync(0);
            await Assertions.Expect(admin.Page.Locator("#server-url")).ToHaveCountAsync(0);
            Assert.True(admin.Problems.Count == 0, string.Join('\n', admin.Problems));
        }

        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await Accounts.SigningInTests.SignInAsync(page, "olga@example.org", plannerPassword);

        // "Look at the server" reads OMERO.
        await page.GotoInteractiveAsync($"/targets/{_omero.TargetId}");
        await page.ClickAsync("#discover");
        await Assertions.Expect(page.Locator("[data-testid=discovered-facts] dd[data-label='OMERO.server']")).ToHaveTextAsync(OmeroHost.OldVersion, new() { Timeout = 120_000 });
        await Assertions.Expect(page.Locator("[data-testid=discovered-facts] dd[data-label='Database']")).ToContainTextAsync("schema OMERO5.3__0");
        await Assertions.Expect(page.Locator("[data-testid=discovered-facts]")).Not.ToContainTextAsync("Env file");

        // The plan: OMERO's section, the SQL as the point of no return, VACUUM offered as the optional phase, no password.
        await page.GotoInteractiveAsync($"/targets/{_omero.TargetId}/plan");
        await Assertions.Expect(page.Locator("#runbook option")).ToHaveCountAsync(1);
        await page.FillAsync("#to", OmeroHost.NewVersion);
        await page.ClickAsync("#show-plan");
        await Assertions.Expect(page.GetByTestId("plan-versions")).ToHaveTextAsync($"{OmeroHost.OldVersion} → {OmeroHost.NewVersion}", new() { Timeout = 120_000 });
        await Assertions.Expect(page.GetByTestId("omero-schema")).ToContainTextAsync("OMERO5.3__0 → OMERO5.4__0");
        await Assertions.Expect(page.Locator("[data-testid=plan-phase][data-key=upgrade-sql] [data-testid=point-of-no-return]")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("[data-testid=plan-phase][data-key=vacuum]")).ToHaveAttributeAsync("data-chosen", "false");
        await Assertions.Expect(page.GetByTestId("plan-users")).ToHaveCountAsync(0);
        Assert.DoesNotContain(OmeroHost.DbPassword, await page.ContentAsync(), StringComparison.Ordinal);
        await page.ClickAsync("#create-run");
        await page.WaitForAddressAsync(new Regex("/runs/[0-9]+$"));
        var runId = int.Parse(page.Url.Split('/').Last(), System.Globalization.CultureInfo.InvariantCulture);
        await Assertions.Expect(page.GetByTestId("approval-wait")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#action-start")).ToHaveCountAsync(0);

        // Pavel approves on his own run page.
        await using (var pavel = await chromium.NewSessionAsync(_app.BaseUrl))
        {
            await Accounts.SigningInTests.SignInAsync(pavel.Page, "pavel@example.org", approverPassword);
            await pavel.Page.GotoInteractiveAsync($"/runs/{runId}");
            await pavel.Page.ConfirmAsync("approve");
            await Assertions.Expect(pavel.Page.Locator("#action-approve")).ToHaveCountAsync(0);
        }

        // Olga's open page follows the approval; she starts the run and watches it reach the checklist.
        await Assertions.Expect(page.Locator("#main")).ToContainTextAsync("approved by pavel@example.org");
        await page.ConfirmAsync("start");
        await Runs.RunLogView.ExpectLineAsync(page, "YOUR DATABASE IS READY FOR UPGRADE TO VERSION OMERO5.4__0", timeout: 240_000);
        await Assertions.Expect(page.GetByTestId("run-state")).Not.ToHaveTextAsync(new Regex("^(Planned|Running)$"), new() { Timeout = 480_000 });
        Assert.True(await page.GetByTestId("run-state").TextContentAsync() == "WaitingForChecklist",
            await (await _admin.GetAsync($"/runs/{runId}/log.txt")).Content.ReadAsStringAsync());
        await Runs.RunLogView.ExpectLineAsync(page, "YOU HAVE SUCCESSFULLY UPGRADED YOUR DATABASE TO VERSION OMERO5.4__0");
        foreach (var key in new[] { "preflight", "release", "precheck", "backup", "stop", "keep-config", "switch", "upgrade-sql", "merge-scripts", "pip", "certificates", "bioformats-cache", "start", "post-checks" })
        {
            await Assertions.Expect(page.Locator($"[data-testid=run-phase][data-key={key}]")).ToHaveAttributeAsync("data-state", "Succeeded");
        }

        Assert.DoesNotContain(OmeroHost.DbPassword, await page.ContentAsync(), StringComparison.Ordinal);

        // The four checks only a person can make complete the run.
        for (var i = 0; i < 4; i++)
        {
            await Assertions.Expect(page.Locator("[data-testid=checklist-item][data-done=true]")).ToHaveCountAsync(i);
            await page.Locator("[data-testid=checklist-item][data-done=false] [data-testid=tick]").First.ClickAsync();
        }

        await Assertions.Expect(page.GetByTestId("run-state")).ToHaveTextAsync("Succeeded");
        Assert.Equal("OMERO5.4__0", await _omero.Host.DbVersionAsync());
        var (status, statusOutput) = await _omero.Host.RunAsync("omero admin status && readlink server/OMERO.server");
        Assert.True(status == 0, statusOutput);
        Assert.Contains($"OMERO.server-{OmeroHost.NewVersion}-ice36", statusOutput, StringComparison.Ordinal);

        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Action == "run.approve" && e.Actor == "pavel@example.org");
        Assert.Contains(events, e => e.Action == "run.start" && e.Actor == "olga@example.org");
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }
}
