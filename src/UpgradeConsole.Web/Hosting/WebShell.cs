using Microsoft.AspNetCore.HttpOverrides;
using MudBlazor.Services;
using UpgradeConsole.Web.Api;
using UpgradeConsole.Web.Components;

namespace UpgradeConsole.Web.Hosting;

/// <summary>
/// The HTML side: interactive Blazor Server pages with MudBlazor; the pages that write cookies and the
/// error pages render statically (with MudBlazor's styles, no circuit). Security headers. docs/decisions/0012-interactive-blazor-server-and-mudblazor.md
/// </summary>
public static class WebShell
{
    public static WebApplicationBuilder AddWebShell(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddRazorComponents().AddInteractiveServerComponents();
        builder.Services.AddMudServices();
        builder.Services.AddSingleton(typeof(PerCall<>));
        builder.Services.AddHttpContextAccessor();
        builder.Services.Configure<LiveConnectionOptions>(builder.Configuration.GetSection("UpgradeConsole:LiveConnections"));
        builder.Services.AddSingleton<LiveConnections>();
        builder.Services.AddHostedService<LiveConnectionRevalidator>();
        builder.Services.AddSingleton<UpgradeConsole.Web.Runs.RunActivity>();
        builder.Services.AddAntiforgery(o =>
        {
            o.Cookie.Name = "UpgradeConsole.Antiforgery";
            o.Cookie.SameSite = SameSiteMode.Strict;
            // Hangfire's dashboard (/jobs) reads this name and sends its token in that header; our own forms post the field.
            o.HeaderName = "RequestVerificationToken";
            o.Cookie.SecurePolicy = builder.Configuration.GetValue("UpgradeConsole:RequireHttps", false) ? CookieSecurePolicy.Always : CookieSecurePolicy.SameAsRequest;
        });
        builder.Services.Configure<ForwardedHeadersOptions>(o =>
        {
            // Behind a TLS-terminating proxy (docker-compose, nginx): trust the configured proxies, and
            // only them, for scheme and client address. The framework trusts loopback by default (anyone
            // with a shell on the host could claim any address: past the sign-in rate limit, into the
            // audit history), and empty lists mean "trust everyone": with no proxy configured, none is read.
            var proxies = (builder.Configuration.GetSection("UpgradeConsole:KnownProxies").Get<string[]>() ?? []).Where(p => !string.IsNullOrWhiteSpace(p)).ToArray();
            o.KnownIPNetworks.Clear();
            o.KnownProxies.Clear();
            o.ForwardedHeaders = proxies.Length == 0 ? ForwardedHeaders.None : ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            foreach (var proxy in proxies)
            {
                o.KnownProxies.Add(System.Net.IPAddress.Parse(proxy));
            }
        });
        return builder;
    }

    public static WebApplication UseWebShell(this WebApplication app)
    {
        app.UseForwardedHeaders();
        if (!app.Environment.IsDevelopment())
        {
            app.UseExceptionHandler("/error", createScopeForErrors: true);
            if (app.Configuration.GetValue("UpgradeConsole:RequireHttps", false))
            {
                app.UseHsts();
            }
        }

        app.UseSecurityHeaders();
        app.UseStatusCodePagesWithReExecute("/not-found", createScopeForStatusCodePages: true);
        app.UseAuthentication();
        app.UseApiAudit();
        app.UseAuthorization();
        app.UseRateLimiter();
        app.UseAntiforgery();
        app.UseAntiforgeryEnforcement();
        return app;
    }

    public static WebApplication MapWebShell(this WebApplication app)
    {
        // Static files are public: the login page needs its styles.
        app.MapStaticAssets().AllowAnonymous();
        app.MapRazorComponents<App>().AddInteractiveServerRenderMode();
        return app;
    }
}
