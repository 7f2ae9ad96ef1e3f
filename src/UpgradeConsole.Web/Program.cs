using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Api;
using UpgradeConsole.Web.Admin;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Cli;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Health;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Jobs;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

// `UpgradeConsole.Web migrate`, `users create …`, `--help`: the same executable is the admin's CLI.
if (CommandLine.IsCommand(args))
{
    return await CommandLine.RunAsync(args);
}

WebApplication app;
try
{
    app = Program.BuildApp(args);
}
catch (StartupConfigurationException ex)
{
    await Console.Error.WriteLineAsync("UpgradeConsole cannot start: " + ex.Message);
    return 1;
}

await app.RunAsync();
return 0;

public partial class Program
{
    /// <summary>The whole application, feature by feature; the CLI builds the same one without running it.</summary>
    internal static WebApplication BuildApp(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddPersistence();
        builder.AddAudit();
        builder.AddAccounts();
        builder.AddTargets();
        builder.AddFractal();
        builder.AddRuns();
        builder.AddApi();
        builder.AddJobs();
        builder.AddHealth();
        builder.AddWebShell();
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseWebShell();
        app.MapHealth();
        app.MapAccounts();
        app.MapAdmin();
        app.MapTargets();
        app.MapFractal();
        app.MapRuns();
        app.MapAudit();
        app.MapApi();
        app.MapWebShell();
        return app;
    }
}
