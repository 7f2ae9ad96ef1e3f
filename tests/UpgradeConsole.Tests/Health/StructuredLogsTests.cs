using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Health;

/// <summary>JSON logs on request, through configuration only (the console logger's json formatter, scopes included).</summary>
public sealed class StructuredLogsTests
{
    [Fact]
    public async Task TheDashboard_ConfiguredForJson_WritesOneJsonObjectPerLine()
    {
        var data = Directory.CreateTempSubdirectory("uc-jsonlogs-").FullName;
        try
        {
            await using var dashboard = await DashboardProcess.StartAsync(data, new Dictionary<string, string>
            {
                ["Logging:Console:FormatterName"] = "json",
                ["Logging:Console:FormatterOptions:IncludeScopes"] = "true",
                ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Information",
            });
            await Eventually.TrueAsync(() => Task.FromResult(dashboard.Output.Contains("Now listening on", StringComparison.Ordinal)), TimeSpan.FromSeconds(30), () => dashboard.Output);

            // The first start's setup link is printed to the console on purpose, not logged (SetupToken): it is no log line.
            var lines = dashboard.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Where(l => !l.StartsWith("UpgradeConsole has no users yet", StringComparison.Ordinal) && !l.Contains("/setup?token=", StringComparison.Ordinal))
                .ToList();
            Assert.Contains(lines, l => l.Contains("Now listening on", StringComparison.Ordinal));
            foreach (var line in lines)
            {
                using var json = JsonDocument.Parse(line);
                Assert.True(json.RootElement.TryGetProperty("LogLevel", out _), line);
                Assert.True(json.RootElement.TryGetProperty("Category", out _), line);
            }
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task TheLinesARunWrites_CarryItsRunPhaseAndTarget()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var app = new UpgradeConsoleApplicationFactory();
        app.ServeOverKestrel();
        await app.CreateFirstAdminAsync();
        using var api = ApiTokens.Client(app.BaseUrl, await ApiTokens.CreateAsync(app, UpgradeConsoleApplicationFactory.AdminEmail, "logs", "Admin"));
        // A planned run on a target with no pinned key: its first phase's job claims the phase, then cannot reach the target.
        var (runId, targetId) = await RunSeed.AddPlannedRunAsync(app.Services);
        using (var started = await api.PostAsJsonAsync($"/api/v1/runs/{runId}/start", new { }, ct))
        {
            Assert.True(started.IsSuccessStatusCode, await started.Content.ReadAsStringAsync(ct));
        }

        await Eventually.TrueAsync(async () =>
        {
            await using var scope = app.Services.CreateAsyncScope();
            return await scope.ServiceProvider.GetRequiredService<AppDbContext>().Runs.AnyAsync(r => r.Id == runId && r.State == RunState.Failed, ct);
        }, TimeSpan.FromSeconds(60), () => string.Join('\n', app.Logs.Lines));

        // Every line the phase's job wrote about the run (the claim among them) carries the run, the phase and the target,
        // which the console's JSON formatter writes out with IncludeScopes (the test above).
        var runLines = app.Logs.Entries.Where(e => e.Category.StartsWith("UpgradeConsole.Web.Runs.", StringComparison.Ordinal)
            && e.Message.Contains($"run {runId}", StringComparison.Ordinal) && !e.Message.Contains("no node holds it", StringComparison.Ordinal)).ToList();
        Assert.Contains(runLines, e => e.Message.Contains("claimed phase preflight", StringComparison.Ordinal));
        Assert.All(runLines, e =>
        {
            Assert.Equal(runId, e.Scope.GetValueOrDefault("RunId"));
            Assert.Equal("preflight", e.Scope.GetValueOrDefault("Phase"));
            Assert.Equal(targetId, e.Scope.GetValueOrDefault("TargetId"));
        });
    }
}
