using System.Text.Json;
using UpgradeConsole.Tests.Fixtures;

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
}
