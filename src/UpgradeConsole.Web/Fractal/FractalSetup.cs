using Microsoft.AspNetCore.Http.HttpResults;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Runbooks;

namespace UpgradeConsole.Web.Fractal;

public static class FractalSetup
{
    public static WebApplicationBuilder AddFractal(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<FractalAccess>();
        builder.Services.AddScoped<FractalUsersService>();
        builder.Services.AddScoped<PreflightService>();
        builder.AddProduct<FractalRuntime>(FractalProduct.Instance);
        return builder;
    }

    /// <summary>The preflight page's htmx action (the users page is interactive and calls its service directly).</summary>
    public static IEndpointRouteBuilder MapFractal(this IEndpointRouteBuilder app)
    {
        app.MapPost("/targets/{id:int}/preflight/run", async (int id, HttpContext http, Targets.TargetService targets, RunbookCatalog catalog, PreflightService preflight, CancellationToken ct) =>
            new RazorComponentResult<PreflightResults>(new Dictionary<string, object?>
            {
                // The preflight of the target's own product (OMERO's checks for an OMERO target).
                [nameof(PreflightResults.Run)] = await targets.FindAsync(id, ct) is { } target && catalog.RuntimeFor(http.RequestServices, target) is { } product
                    ? await product.PreflightAsync(id, http.User, ct)
                    : await preflight.RunAsync(id, http.User, ct),
                [nameof(PreflightResults.TargetId)] = id,
                [nameof(PreflightResults.CanRun)] = true,
            }))
            .RequireAuthorization(Policies.Operate)
            .RequireAntiforgery();

        return app;
    }
}
