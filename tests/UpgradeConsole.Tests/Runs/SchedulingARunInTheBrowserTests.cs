using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// The run page's schedule section (ADR 0020) in Chromium: an Operator schedules an approved run at a
/// wall-clock time of the target's time zone, sees it as scheduled on the run page, the runs list and the
/// overview in that zone, moves it and cancels it; a Viewer sees the schedule and no button. Selectors are
/// visible text and roles only (the run pages are being reworked; what a person reads stays).
/// </summary>
public sealed class SchedulingARunInTheBrowserTests(Chromium chromium) : IAsyncLifetime
{
    private const string Zone = "Europe/Zurich";
    private readonly UpgradeConsoleApplicationFactory _app = new();

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
    }

    [Fact]
    public async Task AnOperatorSchedulesMovesAndCancels_InTheTargetsTimeZone_AViewerOnlyReads()
    {
        var (runId, targetId) = await RunSeed.AddPlannedRunAsync(_app.Services, maintenanceWindows: null, timeZone: Zone);
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            // Approved by a second person, as a target that requires approval wants it.
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var run = await db.Runs.SingleAsync(r => r.Id == runId);
            run.RequiresApproval = true;
            run.ApprovedBy = "approver@example.org";
            run.ApprovedAt = TimeProvider.System.GetUtcNow();
            await db.SaveChangesAsync();
        }

        var admin = await _app.LoginAsAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        var operatorPassword = await _app.CreateUserAsync(admin, "olga@example.org", "Operator");
        var viewerPassword = await _app.CreateUserAsync(admin, "vic@example.org", "Viewer");
        var zone = TimeZoneInfo.FindSystemTimeZoneById(Zone);
        var today = TimeZoneInfo.ConvertTime(TimeProvider.System.GetUtcNow(), zone).Date;
        var first = today.AddDays(2).AddHours(10).AddMinutes(30);
        var moved = today.AddDays(3).AddHours(6).AddMinutes(15);

        await using var olga = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(olga.Page, "olga@example.org", operatorPassword);
        var page = olga.Page;
        await OpenRunPageAsync(page, runId);
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Scheduled start" })).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByText("Not scheduled: it starts when someone starts it.")).ToBeVisibleAsync();

        // Schedule: the field asks for the target's zone, and the page says the time in it (and in UTC).
        await page.GetByLabel($"Start at ({Zone})").FillAsync(first.ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture));
        await page.GetByRole(AriaRole.Button, new() { Name = "Schedule", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByText($"Starts by itself at {Local(first)}")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByText($"({Utc(first, zone)} UTC), scheduled by olga@example.org")).ToBeVisibleAsync();

        // Listed as scheduled, in the target's zone, on the runs list and the overview.
        await olga.GotoInteractiveAsync("/runs");
        await Assertions.Expect(page.GetByRole(AriaRole.Row).Filter(new() { HasText = $"starts {Local(first)}" })).ToHaveCountAsync(1);
        await olga.GotoInteractiveAsync("/");
        await Assertions.Expect(page.GetByText($"starts {Local(first)}")).ToBeVisibleAsync();

        // Reschedule.
        await OpenRunPageAsync(page, runId);
        await page.GetByLabel($"Start at ({Zone})").FillAsync(moved.ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture));
        await page.GetByRole(AriaRole.Button, new() { Name = "Reschedule", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByText($"Starts by itself at {Local(moved)}")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByText($"Starts by itself at {Local(first)}")).ToHaveCountAsync(0);

        // A Viewer reads the schedule and is offered nothing to change it.
        await using (var vic = await chromium.NewSessionAsync(_app.BaseUrl))
        {
            await SigningInTests.SignInAsync(vic.Page, "vic@example.org", viewerPassword);
            await OpenRunPageAsync(vic.Page, runId);
            await Assertions.Expect(vic.Page.GetByText($"Starts by itself at {Local(moved)}")).ToBeVisibleAsync();
            foreach (var name in new[] { "Schedule", "Reschedule", "Cancel the schedule" })
            {
                await Assertions.Expect(vic.Page.GetByRole(AriaRole.Button, new() { Name = name, Exact = true })).ToHaveCountAsync(0);
            }

            await Assertions.Expect(vic.Page.GetByLabel($"Start at ({Zone})")).ToHaveCountAsync(0);
        }

        // Cancel, with a reason for the audit history.
        await page.GetByLabel("Reason for cancelling the schedule").FillAsync("moved to the next window");
        await page.GetByRole(AriaRole.Button, new() { Name = "Cancel the schedule", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByText("Not scheduled: it starts when someone starts it.")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = "Schedule", Exact = true })).ToBeVisibleAsync();
        Assert.Empty(olga.Problems);

        var events = (await _app.AuditEventsAsync()).Where(e => e.Subject == $"run {runId}").ToList();
        Assert.Equal(["run.schedule", "run.reschedule", "run.unschedule"], events.Select(e => e.Action).Where(a => a.Contains("schedule", StringComparison.Ordinal)));
        Assert.All(events.Where(e => e.Action.Contains("schedule", StringComparison.Ordinal)), e => Assert.Equal("olga@example.org", e.Actor));
        Assert.Contains("moved to the next window", events.Single(e => e.Action == "run.unschedule").Details, StringComparison.Ordinal);
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var run = await scope.ServiceProvider.GetRequiredService<AppDbContext>().Runs.AsNoTracking().SingleAsync(r => r.Id == runId);
            Assert.Null(run.ScheduledAt);
            Assert.Null(run.ScheduleJobId);
            Assert.Equal(targetId, run.TargetId);
        }
    }

    /// <summary>Opens the run page; where it runs in a circuit (it is being made interactive), waits for it before anything is clicked.</summary>
    private static async Task OpenRunPageAsync(IPage page, int runId)
    {
        await page.GotoAsync($"/runs/{runId}");
        if (await page.Locator("script[src*='blazor.web']").CountAsync() > 0)
        {
            await page.WaitForInteractiveAsync();
        }
    }

    private static string Local(DateTime wallClock) => wallClock.ToString("ddd d MMM yyyy HH:mm", CultureInfo.InvariantCulture) + " " + Zone;

    private static string Utc(DateTime wallClock, TimeZoneInfo zone) =>
        TimeZoneInfo.ConvertTimeToUtc(DateTime.SpecifyKind(wallClock, DateTimeKind.Unspecified), zone).ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
