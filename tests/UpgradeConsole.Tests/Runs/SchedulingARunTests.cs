using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// A planned run scheduled to start at a time (a Hangfire scheduled job), through the API as scripts use it: it
/// starts at its time and not before, also when the dashboard was restarted in between; a target's maintenance
/// windows refuse a start or a schedule outside them with one sentence; every schedule change is audited.
/// </summary>
public sealed class SchedulingARunTests
{
    private static readonly string[] ScheduleEvents = ["run.schedule", "run.reschedule", "run.unschedule"];

    [Fact]
    public async Task ScheduledRun_StartsAtItsTime_AfterTheDashboardRestarted()
    {
        var ct = TestContext.Current.CancellationToken;
        var dataDirectory = Directory.CreateTempSubdirectory("uc-schedule-").FullName;
        try
        {
            string token;
            int runId;
            DateTimeOffset due;
            await using (var first = new UpgradeConsoleApplicationFactory(DatabaseProvider.Sqlite, dataDirectory: dataDirectory))
            {
                await first.CreateFirstAdminAsync();
                token = await ApiTokens.CreateAsync(first, UpgradeConsoleApplicationFactory.AdminEmail, "scheduler", "Operator");
                (runId, _) = await RunSeed.AddPlannedRunAsync(first.Services);
                using var api = Api(first, token);
                due = TimeProvider.System.GetUtcNow().AddSeconds(20);
                var scheduled = await PostAsync(api, $"runs/{runId}/schedule", new { at = due.ToString("O", CultureInfo.InvariantCulture) }, HttpStatusCode.OK);
                Assert.Equal("Planned", (string?)scheduled["state"]);
                Assert.Equal(due.ToUnixTimeMilliseconds(), DateTimeOffset.Parse((string)scheduled["schedule"]!["at"]!, CultureInfo.InvariantCulture).ToUnixTimeMilliseconds());
                Assert.EndsWith(" UTC", (string?)scheduled["schedule"]!["atLocal"], StringComparison.Ordinal);
            }

            // The first dashboard is gone before the run was due; the second finds the schedule and keeps it.
            await using var second = new UpgradeConsoleApplicationFactory(DatabaseProvider.Sqlite, dataDirectory: dataDirectory);
            using var client = Api(second, token);
            var waiting = await GetAsync(client, $"runs/{runId}");
            if (TimeProvider.System.GetUtcNow() < due.AddSeconds(-1))
            {
                Assert.Equal("Planned", (string?)waiting["state"]);
                Assert.NotNull(waiting["schedule"]);
            }

            JsonNode run = waiting;
            await Eventually.TrueAsync(async () =>
            {
                run = await GetAsync(client, $"runs/{runId}");
                return run["startedAt"] is not null;
            }, TimeSpan.FromSeconds(120), () => run.ToJsonString());

            var startedAt = DateTimeOffset.Parse((string)run["startedAt"]!, CultureInfo.InvariantCulture);
            Assert.True(startedAt >= due, $"started at {startedAt:O}, before its time {due:O}");
            Assert.Equal(UpgradeConsoleApplicationFactory.AdminEmail, (string?)run["startedBy"]);
            var events = await second.AuditEventsAsync();
            Assert.Contains(events, e => e.Action == "run.schedule" && e.Actor == UpgradeConsoleApplicationFactory.AdminEmail);
            Assert.Contains(events, e => e.Action == "run.start" && e.Actor == "system" && e.Details!.Contains("\"scheduled\":true", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task OutsideTheMaintenanceWindow_StartAndScheduleAreRefusedWithASentence_InsideItTheScheduleIsKeptMovedAndCancelled()
    {
        await using var app = new UpgradeConsoleApplicationFactory();
        await app.CreateFirstAdminAsync();
        var token = await ApiTokens.CreateAsync(app, UpgradeConsoleApplicationFactory.AdminEmail, "scheduler", "Operator");
        // One hour a week, opening six hours from now (in UTC): now is outside it.
        var opens = TimeProvider.System.GetUtcNow().AddHours(6);
        var window = opens.ToString("ddd HH:mm", CultureInfo.InvariantCulture) + "-" + opens.AddHours(1).ToString("HH:mm", CultureInfo.InvariantCulture);
        var (runId, _) = await RunSeed.AddPlannedRunAsync(app.Services, window, "UTC");
        using var api = Api(app, token);

        var start = await PostAsync(api, $"runs/{runId}/start", null, HttpStatusCode.Conflict);
        Assert.StartsWith($"This run may start only inside the target's maintenance windows, {window} (UTC);", (string?)start["detail"], StringComparison.Ordinal);
        Assert.Contains("and the next one opens", (string?)start["detail"], StringComparison.Ordinal);

        var tooEarly = await PostAsync(api, $"runs/{runId}/schedule", new { at = opens.AddHours(-1).ToString("O", CultureInfo.InvariantCulture) }, HttpStatusCode.Conflict);
        Assert.Contains("is outside them", (string?)tooEarly["detail"], StringComparison.Ordinal);
        var past = await PostAsync(api, $"runs/{runId}/schedule", new { at = TimeProvider.System.GetUtcNow().AddHours(-1).ToString("O", CultureInfo.InvariantCulture) }, HttpStatusCode.Conflict);
        Assert.Contains("has passed", (string?)past["detail"], StringComparison.Ordinal);
        var nonsense = await PostAsync(api, $"runs/{runId}/schedule", new { at = "next tuesday" }, HttpStatusCode.BadRequest);
        Assert.NotNull(nonsense["errors"]!["at"]);

        // Without an offset the time is the target's wall-clock time (UTC here).
        var inside = opens.AddMinutes(30);
        var scheduled = await PostAsync(api, $"runs/{runId}/schedule", new { at = inside.ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture) }, HttpStatusCode.OK);
        Assert.Equal("Planned", (string?)scheduled["state"]);
        Assert.Equal(inside.ToString("ddd d MMM yyyy HH:mm", CultureInfo.InvariantCulture) + " UTC", (string?)scheduled["schedule"]!["atLocal"]);
        await PostAsync(api, $"runs/{runId}/schedule", new { at = inside.AddMinutes(10).ToString("O", CultureInfo.InvariantCulture) }, HttpStatusCode.OK);
        var listed = await GetAsync(api, $"runs?target={(int)scheduled["targetId"]!}");
        Assert.NotNull(listed[0]!["scheduledAt"]);

        using var unschedule = await api.DeleteAsync($"runs/{runId}/schedule?reason=moved%20to%20next%20week", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, unschedule.StatusCode);
        Assert.Null((await GetAsync(api, $"runs/{runId}"))["schedule"]);
        using var again = await api.DeleteAsync($"runs/{runId}/schedule", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);

        var events = (await app.AuditEventsAsync()).Where(e => e.Subject == $"run {runId}").Select(e => e.Action).ToList();
        Assert.Equal(ScheduleEvents, events);
        var unscheduled = (await app.AuditEventsAsync()).Single(e => e.Action == "run.unschedule");
        Assert.Contains("moved to next week", unscheduled.Details, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PointOfNoReturn_OutsideTheWindow_DoesNotRun_AndTheRunWaitsForAPerson()
    {
        await using var app = new UpgradeConsoleApplicationFactory();
        await app.CreateFirstAdminAsync();
        var token = await ApiTokens.CreateAsync(app, UpgradeConsoleApplicationFactory.AdminEmail, "reader", "Viewer");
        var opens = TimeProvider.System.GetUtcNow().AddHours(6);
        var window = opens.ToString("ddd HH:mm", CultureInfo.InvariantCulture) + "-" + opens.AddHours(1).ToString("HH:mm", CultureInfo.InvariantCulture);
        int runId;
        await using (var scope = app.Services.CreateAsyncScope())
        {
            // A run that got past its preflight inside a window that has closed since: its next phase is set-db, the point of no return.
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var target = new UpgradeConsole.Web.Targets.Target { Name = "windowed", Host = "127.0.0.1", SshUser = "nobody", WorkingDirectory = "/srv/fractal", MaintenanceWindows = window, TimeZone = "UTC" };
            db.Targets.Add(target);
            await db.SaveChangesAsync(TestContext.Current.CancellationToken);
            var run = new Run
            {
                TargetId = target.Id, ActiveTargetId = target.Id, RunbookId = UpgradeConsole.Web.Fractal.FractalRunbooks.ReleaseId,
                FromVersion = "2.16.6", ToVersion = "2.16.7", State = RunState.Running, PlannedBy = "test", PlannedAt = TimeProvider.System.GetUtcNow(),
                StartedAt = TimeProvider.System.GetUtcNow(), StartedBy = "test",
                Phases =
                [
                    new RunPhase { Index = 0, Key = "preflight", Title = "Preflight", State = PhaseState.Succeeded },
                    new RunPhase { Index = 1, Key = "set-db", Title = "Migrate the schema (fractalctl set-db)", State = PhaseState.Pending },
                ],
            };
            db.Runs.Add(run);
            await db.SaveChangesAsync(TestContext.Current.CancellationToken);
            runId = run.Id;
        }

        // The recovery job picks the run up (no node holds it) and its phase job refuses to cross.
        using var api = Api(app, token);
        JsonNode current = new JsonObject();
        await Eventually.TrueAsync(async () =>
        {
            current = await GetAsync(api, $"runs/{runId}");
            return (string?)current["state"] == "Failed";
        }, TimeSpan.FromSeconds(90), () => current.ToJsonString());
        var phase = current["phases"]!.AsArray().Single(p => (string?)p!["key"] == "set-db")!;
        Assert.Equal("Failed", (string?)phase["state"]);
        Assert.StartsWith($"Migrate the schema (fractalctl set-db) is the point of no return and runs only inside the target's maintenance windows, {window} (UTC);", (string?)phase["message"], StringComparison.Ordinal);
        Assert.EndsWith("Nothing of it ran: retry it inside a window, or roll back.", (string?)phase["message"], StringComparison.Ordinal);
        Assert.Null(phase["exitCode"]);
    }

    private static HttpClient Api(UpgradeConsoleApplicationFactory app, string token)
    {
        var client = app.CreateClient();
        client.BaseAddress = new Uri(client.BaseAddress!, "/api/v1/");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private static async Task<JsonNode> GetAsync(HttpClient api, string path)
    {
        using var response = await api.GetAsync(path, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.IsSuccessStatusCode, $"GET {path}: {(int)response.StatusCode} {body}");
        return JsonNode.Parse(body)!;
    }

    private static async Task<JsonNode> PostAsync(HttpClient api, string path, object? body, HttpStatusCode expected)
    {
        using var response = await api.PostAsJsonAsync(path, body ?? new { }, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == expected, $"POST {path}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }
}
