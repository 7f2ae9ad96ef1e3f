using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Runs;

public static class RunsSetup
{
    public static WebApplicationBuilder AddRuns(this WebApplicationBuilder builder)
    {
        builder.Services.AddScoped<RunService>();
        builder.Services.AddScoped<RunDriver>();
        builder.Services.AddScoped<IRunPhaseDriver>(sp => sp.GetRequiredService<RunDriver>());
        builder.Services.AddScoped<PlanBuilder>();
        builder.Services.AddSignalR(o => o.MaximumReceiveMessageSize = 64 * 1024);
        builder.Services.AddSingleton<DashboardNode>();
        builder.Services.AddSingleton<RunLogFirstErrors>();
        builder.Services.AddSingleton<Runbooks.FleetPhaseStore>();
        builder.Services.AddHostedService<RunLogRelay>();
        return builder;
    }

    /// <summary>The live-log hub and the log download; the run actions are the run page's (through <see cref="RunService"/>) and the API's.</summary>
    public static IEndpointRouteBuilder MapRuns(this IEndpointRouteBuilder app)
    {
        app.MapHub<RunLogHub>(RunLogHub.Path);

        var run = app.MapGroup("/runs/{id:int}");
        // The whole log as text, streamed from the database in pages (works for millions of lines).
        // ?host=ADDRESS: only that host's lines of the phases on many hosts (the run page's host grid links here), shown in the tab.
        run.MapGet("/log.txt", async (int id, string? host, AppDbContext db, HttpContext http, CancellationToken ct) =>
        {
            http.Response.ContentType = "text/plain; charset=utf-8";
            if (!string.IsNullOrEmpty(host))
            {
                await RunLogHub.WriteHostTextAsync(db, id, host, http.Response, ct);
                return;
            }

            http.Response.Headers.ContentDisposition = $"attachment; filename=\"run-{id}.log\"";
            await RunLogHub.WriteTextAsync(db, id, 0, long.MaxValue, http.Response, ct);
        }).RequireAuthorization(Policies.View);
        return app;
    }
}
