using System.Net;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Security;

/// <summary>
/// Walks every endpoint the application maps (pages, form posts, API, hubs, whatever later
/// features add) and checks that an anonymous request is sent to the login page or refused with
/// 401. Only the endpoints listed in <see cref="Public"/> may answer anonymously.
/// </summary>
public sealed class EveryEndpointNeedsLoginTests : IAsyncLifetime
{
    /// <summary>Route patterns anyone may reach; adding one here is a security decision.</summary>
    private static readonly HashSet<string> Public =
    [
        "/account/login",
        "/setup",
        "/healthz",
        // Readiness for load balancers and orchestrators: says only whether the database and the job storage answer.
        "/healthz/ready",
        "/not-found",
        "/error",
    ];

    private readonly UpgradeConsoleApplicationFactory _app = new();

    public async ValueTask InitializeAsync() => await _app.CreateFirstAdminAsync();

    [Fact]
    public async Task EveryMappedEndpoint_Anonymous_IsRedirectedToLoginOrUnauthorized()
    {
        var endpoints = _app.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .OfType<RouteEndpoint>()
            .Where(e => !IsStaticAsset(e))
            .ToList();
        Assert.True(endpoints.Count > 10, $"Only {endpoints.Count} endpoints found; the walk is not seeing the app.");

        var client = _app.CreateBrowserLikeClient();
        var failures = new List<string>();
        var checkedCount = 0;
        foreach (var endpoint in endpoints)
        {
            var pattern = "/" + endpoint.RoutePattern.RawText!.TrimStart('/');
            if (Public.Contains(pattern))
            {
                continue;
            }

            var url = Concrete(endpoint);
            var methods = endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["GET", "POST"];
            foreach (var method in methods)
            {
                using var request = new HttpRequestMessage(new HttpMethod(method), url);
                if (method is "POST" or "PUT" or "PATCH")
                {
                    request.Content = new FormUrlEncodedContent([]);
                }

                var response = await client.SendAsync(request);
                checkedCount++;
                var toLogin = response.StatusCode == HttpStatusCode.Redirect
                    && response.Headers.Location?.OriginalString.Contains("/account/login", StringComparison.Ordinal) == true;
                if (!toLogin && response.StatusCode != HttpStatusCode.Unauthorized)
                {
                    failures.Add($"{method} {url} ({pattern}) answered {(int)response.StatusCode} {response.Headers.Location}");
                }
            }
        }

        Assert.True(failures.Count == 0, "Reachable without login:\n" + string.Join('\n', failures));
        Assert.True(checkedCount >= endpoints.Count - Public.Count, $"checked {checkedCount} requests");
    }

    [Fact]
    public async Task PublicEndpoints_AreExactlyTheListedOnes()
    {
        var patterns = _app.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .OfType<RouteEndpoint>()
            .Where(e => !IsStaticAsset(e))
            .Where(e => e.Metadata.GetMetadata<Microsoft.AspNetCore.Authorization.IAllowAnonymous>() is not null)
            .Select(e => "/" + e.RoutePattern.RawText!.TrimStart('/'))
            .ToHashSet();

        Assert.Subset(Public, patterns);
        // An unknown address is not an open door either.
        var response = await _app.CreateBrowserLikeClient().GetAsync("/no/such/page");
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
    }

    private static bool IsStaticAsset(RouteEndpoint e) =>
        e.Metadata.Any(m => m.GetType().FullName == "Microsoft.AspNetCore.StaticAssets.StaticAssetDescriptor");

    private static string Concrete(RouteEndpoint endpoint)
    {
        var segments = endpoint.RoutePattern.PathSegments.Select(segment => string.Concat(segment.Parts.Select(part => part switch
        {
            Microsoft.AspNetCore.Routing.Patterns.RoutePatternLiteralPart literal => literal.Content,
            Microsoft.AspNetCore.Routing.Patterns.RoutePatternParameterPart parameter => parameter.ParameterPolicies.Any(p => p.Content is "int" or "long")
                ? "1"
                : "x1",
            Microsoft.AspNetCore.Routing.Patterns.RoutePatternSeparatorPart separator => separator.Content,
            _ => "",
        })));
        return "/" + string.Join('/', segments);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
