using Microsoft.AspNetCore.Antiforgery;

namespace UpgradeConsole.Web.Hosting;

public static class AntiforgeryValidation
{
    /// <summary>
    /// Enforces the antiforgery token on every unsafe request to these endpoints. (The framework's
    /// middleware only records its verdict; only form binding acts on it, so an htmx post without a
    /// form body would slip through.) The token comes from the form field or the RequestVerificationToken header.
    /// </summary>
    public static TBuilder RequireAntiforgery<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder
    {
        builder.WithMetadata(new RequireAntiforgeryTokenAttribute());
        builder.AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            if (HttpMethods.IsGet(http.Request.Method) || HttpMethods.IsHead(http.Request.Method) || HttpMethods.IsOptions(http.Request.Method))
            {
                return await next(context);
            }

            // The middleware may already have checked (and only recorded) the result; otherwise check now.
            var valid = http.Features.Get<IAntiforgeryValidationFeature>() is { } checkedByMiddleware
                ? checkedByMiddleware.IsValid
                : await http.RequestServices.GetRequiredService<IAntiforgery>().IsRequestValidAsync(http);
            if (!valid)
            {
                return Results.Problem(
                    statusCode: StatusCodes.Status400BadRequest,
                    title: "Missing or stale form token",
                    detail: "The request carried no valid antiforgery token. Reload the page and try again.");
            }

            return await next(context);
        });
        return builder;
    }
}
