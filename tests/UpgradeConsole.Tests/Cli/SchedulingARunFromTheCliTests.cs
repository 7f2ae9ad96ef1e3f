using System.Globalization;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Cli;

/// <summary>
/// `runs schedule` and `runs unschedule` (a real CLI process against a real dashboard): a time outside the target's
/// maintenance windows is refused with the sentence and exit 2; inside, the run is scheduled in the target's time
/// zone and the schedule can be cancelled.
/// </summary>
public sealed class SchedulingARunFromTheCliTests : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private string _token = "";

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
        _token = await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "ci", "Operator");
    }

    [Fact]
    public async Task ScheduleOutsideTheWindow_IsRefused_InsideItIsKept_AndUnscheduleDropsIt()
    {
        var zone = TimeZoneInfo.FindSystemTimeZoneById("Europe/Zurich");
        var opens = TimeZoneInfo.ConvertTime(TimeProvider.System.GetUtcNow().AddDays(2), zone);
        var window = opens.ToString("ddd HH:mm", CultureInfo.InvariantCulture) + "-" + opens.AddHours(2).ToString("HH:mm", CultureInfo.InvariantCulture);
        var (runId, _) = await RunSeed.AddPlannedRunAsync(_app.Services, window, "Europe/Zurich");
        var run = runId.ToString(CultureInfo.InvariantCulture);

        var outside = await CliAsync(["runs", "schedule", run, "--at", opens.AddHours(-3).ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture)]);
        Assert.True(outside.ExitCode == 2, outside.Combined);
        Assert.Contains("This run may start only inside the target's maintenance windows", outside.StandardError, StringComparison.Ordinal);

        var inside = opens.AddMinutes(30);
        var scheduled = await CliAsync(["runs", "schedule", run, "--at", inside.ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture)]);
        Assert.True(scheduled.ExitCode == 0, scheduled.Combined);
        Assert.StartsWith($"Run {runId} starts at {inside.ToString("ddd d MMM yyyy HH:mm", CultureInfo.InvariantCulture)} Europe/Zurich", scheduled.StandardOutput, StringComparison.Ordinal);

        var unscheduled = await CliAsync(["runs", "unschedule", run, "--reason", "the window moved"]);
        Assert.True(unscheduled.ExitCode == 0, unscheduled.Combined);
        var again = await CliAsync(["runs", "unschedule", run]);
        Assert.True(again.ExitCode == 2, again.Combined);
        Assert.Contains("This run is not scheduled.", again.StandardError, StringComparison.Ordinal);
        Assert.Contains(await _app.AuditEventsAsync(), e => e.Action == "run.unschedule" && e.Details.Contains("the window moved", StringComparison.Ordinal));
    }

    private Task<ProcessRunner.Result> CliAsync(string[] args) =>
        ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args],
            environment: new Dictionary<string, string?>
            {
                ["UPGRADECONSOLE_URL"] = _app.BaseUrl,
                ["UPGRADECONSOLE_TOKEN"] = _token,
                ["DOTNET_ENVIRONMENT"] = "Production",
            },
            workingDirectory: AppContext.BaseDirectory, timeout: TimeSpan.FromMinutes(5), check: false);

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
