using System.Net;
using Microsoft.AspNetCore.Authorization;
using Prometheus;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Web.Api;

namespace UpgradeConsole.Web.Metrics;

public sealed class MetricsOptions
{
    public const string Section = "UpgradeConsole:Metrics";

    /// <summary>
    /// Networks (CIDR, e.g. <c>10.0.5.0/24</c>, or single addresses) whose scrapers need no token. Empty by default: then only
    /// an API token of the <c>Metrics</c> scope (or an Admin's token) reads <c>/metrics</c>. The address is the connection's,
    /// or the forwarded one only from configured proxies.
    /// </summary>
    public List<string> AllowedNetworks { get; set; } = [];
}

/// <summary><c>/metrics</c>: Prometheus text format, for a token of the Metrics scope, an Admin's token, or an allowed network.</summary>
public static class MetricsSetup
{
    public const string Policy = "Metrics.Read";

    public static WebApplicationBuilder AddDashboardMetrics(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<DashboardMetrics>();
        builder.Services.AddOptions<MetricsOptions>().BindConfiguration(MetricsOptions.Section)
            .Validate(o => o.AllowedNetworks.All(n => TryNetwork(n, out _)), $"{MetricsOptions.Section}:AllowedNetworks has an entry that is not an address or a CIDR network.")
            .ValidateOnStart();
        builder.Services.AddSingleton<IAuthorizationHandler, MetricsAccessHandler>();
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy(Policy, p => p.AddAuthenticationSchemes(ApiTokenHandler.SchemeName).AddRequirements(new MetricsAccess()));
        return builder;
    }

    public static IEndpointRouteBuilder MapDashboardMetrics(this IEndpointRouteBuilder app)
    {
        var registry = app.ServiceProvider.GetRequiredService<DashboardMetrics>().Registry;
        app.MapMetrics(settings => settings.Registry = registry, "/metrics")
            .RequireAuthorization(Policy)
            .DisableRateLimiting();
        return app;
    }

    internal static bool TryNetwork(string text, out IPNetwork network)
    {
        var t = text.Trim();
        if (IPNetwork.TryParse(t, out network))
        {
            return true;
        }

        if (IPAddress.TryParse(t, out var address))
        {
            network = new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
            return true;
        }

        return false;
    }
}

internal sealed class MetricsAccess : IAuthorizationRequirement;

internal sealed class MetricsAccessHandler(Microsoft.Extensions.Options.IOptionsMonitor<MetricsOptions> options, IHttpContextAccessor http) : AuthorizationHandler<MetricsAccess>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, MetricsAccess requirement)
    {
        if (context.User.Identity?.IsAuthenticated == true && (context.User.IsInRole(TokenScopes.Metrics) || context.User.IsInRole(Roles.Admin)))
        {
            context.Succeed(requirement);
            return Task.CompletedTask;
        }

        var remote = http.HttpContext?.Connection.RemoteIpAddress;
        if (remote is not null)
        {
            if (remote.IsIPv4MappedToIPv6)
            {
                remote = remote.MapToIPv4();
            }

            foreach (var entry in options.CurrentValue.AllowedNetworks)
            {
                if (MetricsSetup.TryNetwork(entry, out var network) && network.Contains(remote))
                {
                    context.Succeed(requirement);
                    break;
                }
            }
        }

        return Task.CompletedTask;
    }
}
