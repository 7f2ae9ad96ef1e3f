namespace UpgradeConsole.Tests.Fixtures;

/// <summary>The dashboard's own executable as a shell runs it: an API client verb against a running dashboard, with a token.</summary>
public static class DashboardCli
{
    public static Task<ProcessRunner.Result> RunAsync(string baseUrl, string token, IReadOnlyList<string> args, TimeSpan? timeout = null) =>
        ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args],
            environment: new Dictionary<string, string?>
            {
                ["UPGRADECONSOLE_URL"] = baseUrl,
                ["UPGRADECONSOLE_TOKEN"] = token,
                ["DOTNET_ENVIRONMENT"] = "Production",
            },
            workingDirectory: AppContext.BaseDirectory, timeout: timeout ?? TimeSpan.FromMinutes(10), check: false);
}
