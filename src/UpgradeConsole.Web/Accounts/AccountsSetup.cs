using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.RateLimiting;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Accounts;

/// <summary>Authorization policies, one per role level. Pages and endpoints name one of these.</summary>
public static class Policies
{
    /// <summary>Any signed-in user with a role (Viewer, Operator or Admin).</summary>
    public const string View = "View";

    /// <summary>Operator or Admin.</summary>
    public const string Operate = "Operate";

    /// <summary>Admin only.</summary>
    public const string Administer = "Administer";
}

public static class AccountsSetup
{
    public const string LoginPath = "/account/login";
    public const string SetupPath = "/setup";
    public const string LoginRateLimitPolicy = "login";

    public static WebApplicationBuilder AddAccounts(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddIdentity<AppUser, IdentityRole>(o =>
            {
                o.User.RequireUniqueEmail = true;
                // Length over composition rules (NIST SP 800-63B).
                o.Password.RequiredLength = 12;
                o.Password.RequireDigit = false;
                o.Password.RequireLowercase = false;
                o.Password.RequireUppercase = false;
                o.Password.RequireNonAlphanumeric = false;
                o.Lockout.AllowedForNewUsers = true;
                o.Lockout.MaxFailedAccessAttempts = 5;
                o.Lockout.DefaultLockoutTimeSpan = TimeSpan.FromMinutes(15);
            })
            .AddEntityFrameworkStores<AppDbContext>()
            .AddSignInManager<AppSignInManager>()
            .AddDefaultTokenProviders();

        services.Configure<SecurityStampValidatorOptions>(o =>
            // Checked on every request: disabling a user or changing a role takes effect at once.
            o.ValidationInterval = TimeSpan.Zero);

        services.ConfigureApplicationCookie(o =>
        {
            o.Cookie.Name = "UpgradeConsole.Auth";
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.SecurePolicy = builder.Configuration.GetValue("UpgradeConsole:RequireHttps", false)
                ? CookieSecurePolicy.Always
                : CookieSecurePolicy.SameAsRequest;
            o.ExpireTimeSpan = TimeSpan.FromHours(8);
            o.SlidingExpiration = true;
            o.LoginPath = LoginPath;
            o.LogoutPath = "/account/logout";
            o.AccessDeniedPath = "/account/access-denied";
            o.Events.OnRedirectToLogin = ctx => Deny(ctx, StatusCodes.Status401Unauthorized);
            o.Events.OnRedirectToAccessDenied = ctx => Deny(ctx, StatusCodes.Status403Forbidden);
        });

        services.AddAuthorizationBuilder()
            .AddPolicy(Policies.View, p => p.RequireAuthenticatedUser().RequireRole(Roles.All))
            .AddPolicy(Policies.Operate, p => p.RequireAuthenticatedUser().RequireRole(Roles.Admin, Roles.Operator))
            .AddPolicy(Policies.Administer, p => p.RequireAuthenticatedUser().RequireRole(Roles.Admin))
            // Everything not marked otherwise needs a signed-in user with a role.
            .SetFallbackPolicy(new AuthorizationPolicyBuilder().RequireAuthenticatedUser().RequireRole(Roles.All).Build());

        services.AddSingleton<SetupToken>();
        services.AddHostedService<SetupTokenAnnouncer>();
        services.AddScoped<UserAdministration>();
        services.AddScoped<PasswordSignIn>();
        services.AddSingleton<UnknownAccountThrottle>();
        services.AddScoped<UserAccess>();
        services.AddCascadingAuthenticationState();
        services.AddScoped<Microsoft.AspNetCore.Components.Authorization.AuthenticationStateProvider, CircuitAuthentication>();

        var signInsPerMinute = builder.Configuration.GetValue("UpgradeConsole:SignInAttemptsPerMinute", 10);
        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            // Per client address: 10 sign-in or setup attempts a minute. Lockout protects each
            // account; this protects the server from password spraying across accounts.
            o.AddPolicy(LoginRateLimitPolicy, ctx => ctx.Request.Method == HttpMethods.Post
                ? RateLimitPartition.GetFixedWindowLimiter(
                    ctx.Connection.RemoteIpAddress?.ToString() ?? "unknown",
                    _ => new FixedWindowRateLimiterOptions { PermitLimit = signInsPerMinute, Window = TimeSpan.FromMinutes(1), QueueLimit = 0 })
                : RateLimitPartition.GetNoLimiter("reads"));
            o.OnRejected = async (ctx, ct) =>
            {
                ctx.HttpContext.Response.ContentType = "text/plain; charset=utf-8";
                await ctx.HttpContext.Response.WriteAsync("Too many sign-in attempts from this address. Wait a minute and try again.", ct);
            };
        });
        return builder;
    }

    /// <summary>
    /// Pages redirect to the login page; the API and the hubs (the log hub, Blazor's circuit hub) get a bare status.
    /// </summary>
    private static Task Deny(Microsoft.AspNetCore.Authentication.RedirectContext<CookieAuthenticationOptions> ctx, int status)
    {
        var request = ctx.Request;
        var isApi = request.Path.StartsWithSegments("/api") || request.Path.StartsWithSegments("/hubs") || request.Path.StartsWithSegments("/openapi")
            || request.Path.StartsWithSegments("/_blazor");
        if (isApi)
        {
            ctx.Response.StatusCode = status;
            // A bare status, not the "not found" page that status-code pages would render.
            if (ctx.HttpContext.Features.Get<Microsoft.AspNetCore.Diagnostics.IStatusCodePagesFeature>() is { } pages)
            {
                pages.Enabled = false;
            }

            return Task.CompletedTask;
        }

        ctx.Response.Redirect(ctx.RedirectUri);
        return Task.CompletedTask;
    }
}
