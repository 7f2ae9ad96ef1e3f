namespace UpgradeConsole.Web.Hosting;

/// <summary>
/// Headers on every response. The Content-Security-Policy allows scripts and connections (the circuit's
/// and the log hub's WebSockets included) only from this origin: no inline script, no eval, no framing.
/// Styles may be inline: MudBlazor writes its theme as a &lt;style&gt; element and sizes components with
/// style attributes (docs/decisions/0012-interactive-blazor-server-and-mudblazor.md).
/// </summary>
public static class SecurityHeaders
{
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; " +
        "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

    public static IApplicationBuilder UseSecurityHeaders(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            context.Response.OnStarting(() =>
            {
                var headers = context.Response.Headers;
                // An endpoint may carry its own (relaxed) policy: only Hangfire's dashboard under /jobs does.
                headers.ContentSecurityPolicy = context.GetEndpoint()?.Metadata.GetMetadata<ContentSecurityPolicyMetadata>()?.Policy ?? ContentSecurityPolicy;
                headers.XContentTypeOptions = "nosniff";
                headers.XFrameOptions = "DENY";
                headers["Referrer-Policy"] = "same-origin";
                headers["Cross-Origin-Opener-Policy"] = "same-origin";
                headers["Cross-Origin-Resource-Policy"] = "same-origin";
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=(), usb=()";
                return Task.CompletedTask;
            });
            await next(context);
        });
}

/// <summary>Endpoint metadata: the Content-Security-Policy of this endpoint's responses instead of the strict one.</summary>
public sealed record ContentSecurityPolicyMetadata(string Policy);
