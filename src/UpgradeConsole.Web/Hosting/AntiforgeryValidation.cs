using Microsoft.AspNetCore.Antiforgery;

namespace UpgradeConsole.Web.Hosting;

public static class AntiforgeryValidation
{
    /// <summary>Marks endpoints whose unsafe requests need an antiforgery token (enforced by <see cref="UseAntiforgeryEnforcement"/>).</summary>
    public static TBuilder RequireAntiforgery<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new RequireAntiforgeryTokenAttribute());

    /// <summary>
    /// Refuses, with 400 and before the endpoint binds anything, every unsafe request to an endpoint
    /// that requires an antiforgery token and carries no valid one. The framework's middleware only
    /// records its verdict (and only for form bodies): a bodiless post would slip through, and a
    /// form-bound parameter throws, which the exception handler answers 500. The token comes from the
    /// form field (the dashboard's own forms) or the RequestVerificationToken header (Hangfire's
    /// dashboard at /jobs sends it there: see WebShell).
    /// </summary>
    public static WebApplication UseAntiforgeryEnforcement(this WebApplication app)
    {
        app.Use(async (http, next) =>
        {
            var method = http.Request.Method;
            var required = http.GetEndpoint()?.Metadata.GetMetadata<IAntiforgeryMetadata>() is { RequiresValidation: true };
            if (!required || HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsTrace(method))
            {
                await next(http);
                return;
            }

            var valid = http.Features.Get<IAntiforgeryValidationFeature>() is { } checkedByMiddleware
                ? checkedByMiddleware.IsValid
                : await http.RequestServices.GetRequiredService<IAntiforgery>().IsRequestValidAsync(http);
            if (!valid)
            {
                await Results.Problem(
                    statusCode: StatusCodes.Status400BadRequest,
                    title: "Missing or stale form token",
                    detail: "The request carried no valid antiforgery token. Reload the page and try again.").ExecuteAsync(http);
                return;
            }

            await next(http);
        });
        return app;
    }
}
