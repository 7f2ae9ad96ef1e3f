using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Api;
using UpgradeConsole.Web.Admin;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.BackendAi;
using UpgradeConsole.Web.Cli;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Health;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Jobs;
using UpgradeConsole.Web.Metrics;
using UpgradeConsole.Web.Notifications;
using UpgradeConsole.Web.Omero;
using UpgradeConsole.Web.Overview;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Rehearsals;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

// `UpgradeConsole.Web migrate`, `users create …`, `--help`: the same executable is the admin's CLI.
if (CommandLine.IsCommand(args))
{
    return await CommandLine.RunAsync(args);
}

return await Program.WithAppAsync(args, Console.Error, async app =>
{
    await app.RunAsync();
    return 0;
});

public partial class Program
{
    /// <summary>
    /// Builds the application and hands it to <paramref name="use"/> (serving it, or a CLI verb): a setting
    /// it cannot start with ends the process with one plain line on <paramref name="error"/> and exit code 1.
    /// </summary>
    internal static async Task<int> WithAppAsync(string[] args, TextWriter error, Func<WebApplication, Task<int>> use, Action<WebApplicationBuilder>? configure = null)
    {
        WebApplication app;
        try
        {
            app = BuildApp(args, configure);
        }
        catch (StartupConfigurationException ex)
        {
            await error.WriteLineAsync("UpgradeConsole cannot start: " + ex.Message);
            return 1;
        }

        await using (app)
        {
            try
            {
                return await use(app);
            }
            catch (StartupConfigurationException ex)
            {
                // Found while starting (the key ring cannot be opened, …): the same one plain line.
                await error.WriteLineAsync("UpgradeConsole cannot start: " + ex.Message);
                return 1;
            }
        }
    }

    /// <summary>The whole application, feature by feature; the CLI builds the same one without running it.</summary>
    internal static WebApplication BuildApp(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddPersistence();
        builder.AddAudit();
        builder.AddAccounts();
        builder.AddAdmin();
        builder.AddTargets();
        builder.AddRunbooks();
        builder.AddFractal();
        builder.AddOmero();
        builder.AddBackendAi();
        builder.AddRuns();
        builder.AddRehearsals();
        builder.AddNotifications();
        builder.AddOverview();
        builder.AddApi();
        builder.AddJobs();
        builder.AddHealth();
        builder.AddDashboardMetrics();
        builder.AddWebShell();
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseWebShell();
        app.MapHealth();
        app.MapDashboardMetrics();
        app.MapAccounts();
        app.MapRuns();
        app.MapAudit();
        app.MapApi();
        app.MapJobs();
        app.MapWebShell();
        return app;
    }
}
