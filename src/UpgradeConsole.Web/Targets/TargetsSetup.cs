using Microsoft.AspNetCore.Http.HttpResults;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Hosting;

namespace UpgradeConsole.Web.Targets;

public static class TargetsSetup
{
    public static WebApplicationBuilder AddTargets(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<SshAgentPool>();
        builder.Services.AddSingleton<TargetConnections>();
        builder.Services.AddScoped<TargetService>();
        builder.Services.AddOptions<TargetWorkOptions>().BindConfiguration(TargetWorkOptions.Section);
        builder.Services.AddSingleton<TargetWorkLimiter>();
        return builder;
    }

    /// <summary>The htmx actions of the target page: scan, pin, test, discover (Admin for keys; Operator for the rest).</summary>
    public static IEndpointRouteBuilder MapTargets(this IEndpointRouteBuilder app)
    {
        var target = app.MapGroup("/targets/{id:int}").RequireAntiforgery();

        target.MapPost("/scan", async (int id, bool? jump, TargetService targets, CancellationToken ct) =>
        {
            var (keys, error) = await targets.ScanAsync(id, jump == true, ct);
            var current = await targets.FindAsync(id, ct);
            return current is null
                ? (IResult)Results.NotFound()
                : new RazorComponentResult<HostKeyChoices>(new Dictionary<string, object?>
                {
                    [nameof(HostKeyChoices.Target)] = current,
                    [nameof(HostKeyChoices.Keys)] = keys,
                    [nameof(HostKeyChoices.Error)] = error,
                    [nameof(HostKeyChoices.Jump)] = jump == true,
                });
        }).RequireAuthorization(Policies.Administer);

        target.MapPost("/pin", async (int id, [Microsoft.AspNetCore.Mvc.FromForm] string fingerprint, [Microsoft.AspNetCore.Mvc.FromForm] bool? jump, TargetService targets, HttpContext http, CancellationToken ct) =>
        {
            var result = await targets.PinAsync(id, fingerprint, jump == true, http.User, ct);
            if (result.Succeeded)
            {
                // The whole page changes (state badge, actions): let htmx load it again.
                http.Response.Headers["HX-Refresh"] = "true";
                return Results.Ok();
            }

            var current = await targets.FindAsync(id, ct);
            return current is null
                ? (IResult)Results.NotFound()
                : new RazorComponentResult<HostKeyChoices>(new Dictionary<string, object?>
                {
                    [nameof(HostKeyChoices.Target)] = current,
                    [nameof(HostKeyChoices.Error)] = string.Join(" ", result.Errors),
                    [nameof(HostKeyChoices.Jump)] = jump == true,
                });
        }).RequireAuthorization(Policies.Administer);

        target.MapPost("/test", async (int id, TargetService targets, HttpContext http, CancellationToken ct) =>
            new RazorComponentResult<ConnectionTestPanel>(new Dictionary<string, object?>
            {
                [nameof(ConnectionTestPanel.Record)] = await targets.TestAsync(id, http.User, ct),
                [nameof(ConnectionTestPanel.TargetId)] = id,
            })).RequireAuthorization(Policies.Operate);

        target.MapPost("/discover", async (int id, TargetService targets, HttpContext http, CancellationToken ct) =>
            new RazorComponentResult<DiscoveryPanel>(new Dictionary<string, object?>
            {
                [nameof(DiscoveryPanel.Record)] = await targets.DiscoverAsync(id, http.User, ct),
                [nameof(DiscoveryPanel.TargetId)] = id,
            })).RequireAuthorization(Policies.Operate);

        target.MapPost("/delete", async (int id, TargetService targets, HttpContext http, CancellationToken ct) =>
        {
            await targets.DeleteAsync(id, http.User, ct);
            if (!http.Request.Headers.ContainsKey("HX-Request"))
            {
                return Results.Redirect("/targets");
            }

            http.Response.Headers["HX-Redirect"] = "/targets";
            return Results.Ok();
        }).RequireAuthorization(Policies.Administer);
        return app;
    }
}
