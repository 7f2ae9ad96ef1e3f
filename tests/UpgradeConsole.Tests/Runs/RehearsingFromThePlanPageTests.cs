using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Issue 18 in Chromium: the plan page says a recent passing rehearsal is needed (the target asks for one), an Operator
/// clicks "Rehearse on a copy", follows the rehearsal on its run page to its end, finds it with its "rehearsal" chip in
/// the runs list, and the plan page's rehearsal panel then shows it passed and the requirement met.
/// </summary>
public sealed class RehearsingFromThePlanPageTests(Chromium chromium, SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private FractalTarget _fractal = default!;
    private string _operatorPassword = "";

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        var admin = await _app.CreateFirstAdminAsync();
        _operatorPassword = await _app.CreateUserAsync(admin, "olga@example.org", "Operator");
        _fractal = await FractalTarget.CreateAsync(_app, admin, ssh, postgres);
        await _fractal.PrepareForUpgradeAsync(ssh);
        await using (var conn = new NpgsqlConnection(postgres.AdminConnectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"ALTER ROLE \"{new NpgsqlConnectionStringBuilder(_fractal.DatabaseConnection).Username}\" CREATEDB", conn);
            await cmd.ExecuteNonQueryAsync();
        }

        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var target = await db.Targets.SingleAsync(t => t.Id == _fractal.TargetId);
        target.RequirePassingRehearsalWithin = TimeSpan.FromDays(7);
        await db.SaveChangesAsync();
    }

    [Fact]
    public async Task AnOperatorRehearsesFromThePlanPage_FollowsIt_AndSeesItOnTheRunsListAndThePlan()
    {
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await Accounts.SigningInTests.SignInAsync(page, "olga@example.org", _operatorPassword);

        await page.GotoInteractiveAsync($"/targets/{_fractal.TargetId}/preflight");
        await page.ClickAsync("#run-preflight");
        await Assertions.Expect(page.Locator("[data-check='rehearsal.recent']")).ToHaveAttributeAsync("data-status", "Fail");

        await page.GotoInteractiveAsync($"/targets/{_fractal.TargetId}/plan");
        await Assertions.Expect(page.GetByTestId("plan-rehearsal")).ToContainTextAsync("Not rehearsed yet.");
        var required = page.GetByTestId("plan-rehearsal-required");
        await Assertions.Expect(required).ToHaveAttributeAsync("data-status", "Fail");
        await Assertions.Expect(required).ToContainTextAsync("Needed before a run: This target asks for a passing rehearsal newer than 7 days; it has none.");

        await page.ClickAsync("#rehearse");
        await page.WaitForAddressAsync(new Regex("/runs/[0-9]+$"));
        var id = page.Url.Split('?', '#')[0].Split('/').Last();
        await Assertions.Expect(page.GetByTestId("run-state")).Not.ToHaveTextAsync(new Regex("^(Planned|Running)$"), new() { Timeout = 360_000 });
        await Assertions.Expect(page.GetByTestId("run-state")).ToHaveTextAsync("Succeeded");
        await RunLogView.ExpectLineAsync(page, "[compare] 11 as predicted, 0 difference(s)");
        await Assertions.Expect(page.Locator("[data-testid=run-phase][data-key=rehearsal-cleanup]")).ToHaveAttributeAsync("data-state", "Succeeded");

        await page.GotoInteractiveAsync("/runs");
        var row = page.GetByRole(AriaRole.Row).Filter(new() { Has = page.Locator($"[data-testid=run-row-id][data-id='{id}']") });
        await Assertions.Expect(row.GetByTestId("run-kind")).ToHaveTextAsync("rehearsal");
        await Assertions.Expect(row).ToContainTextAsync("Rehearsal: ");

        // The plan shows the rehearsal; once the preflight ran again, the requirement is met.
        await page.GotoInteractiveAsync($"/targets/{_fractal.TargetId}/preflight");
        await page.ClickAsync("#run-preflight");
        await Assertions.Expect(page.Locator("[data-check='rehearsal.recent']")).ToHaveAttributeAsync("data-status", "Pass");
        await page.GotoInteractiveAsync($"/targets/{_fractal.TargetId}/plan");
        await Assertions.Expect(page.GetByTestId("plan-rehearsal-latest")).ToContainTextAsync($"Rehearsal #{id}");
        await Assertions.Expect(page.GetByTestId("plan-rehearsal-outcome")).ToHaveTextAsync("passed");
        await Assertions.Expect(required).ToHaveAttributeAsync("data-status", "Pass");
        await Assertions.Expect(required).ToContainTextAsync($"rehearsal {id} passed");
        await browser.ScreenshotAsync("plan-after-rehearsal");
    }

    public async ValueTask DisposeAsync()
    {
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
