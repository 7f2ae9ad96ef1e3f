using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Api;

/// <summary>
/// Every API endpoint against no token, a Viewer, an Operator and an Admin token: 401 without a
/// token, 403 below the endpoint's role, and through to the endpoint at or above it. The table below
/// is the API's role design; the app's endpoints and the OpenAPI document must both match it exactly.
/// </summary>
public sealed partial class ApiAccessTests : IAsyncLifetime
{
    private static readonly (string Method, string Pattern, string Role)[] Endpoints =
    [
        ("GET", "/api/v1/targets", "Viewer"),
        ("POST", "/api/v1/targets", "Admin"),
        ("GET", "/api/v1/targets/{id:int}", "Viewer"),
        ("PUT", "/api/v1/targets/{id:int}", "Admin"),
        ("PATCH", "/api/v1/targets/{id:int}", "Admin"),
        ("DELETE", "/api/v1/targets/{id:int}", "Admin"),
        ("GET", "/api/v1/targets/{id:int}/host-keys", "Admin"),
        ("POST", "/api/v1/targets/{id:int}/pin", "Admin"),
        ("POST", "/api/v1/targets/{id:int}/preflight", "Operator"),
        ("GET", "/api/v1/targets/{id:int}/preflight", "Viewer"),
        ("GET", "/api/v1/targets/{id:int}/fractal/users", "Viewer"),
        ("PATCH", "/api/v1/targets/{id:int}/fractal/users/{userId:int}", "Operator"),
        ("GET", "/api/v1/runbooks", "Viewer"),
        ("GET", "/api/v1/targets/{id:int}/plan", "Operator"),
        ("POST", "/api/v1/targets/{id:int}/runs", "Operator"),
        ("POST", "/api/v1/targets/{id:int}/rehearsals", "Operator"),
        ("GET", "/api/v1/runs", "Viewer"),
        ("GET", "/api/v1/runs/{id:int}", "Viewer"),
        ("GET", "/api/v1/runs/{id:int}/hosts", "Viewer"),
        ("GET", "/api/v1/runs/{id:int}/plan", "Viewer"),
        ("POST", "/api/v1/runs/{id:int}/start", "Operator"),
        ("POST", "/api/v1/runs/{id:int}/approve", "Operator"),
        ("POST", "/api/v1/runs/{id:int}/retry", "Operator"),
        ("POST", "/api/v1/runs/{id:int}/mark-done", "Operator"),
        ("POST", "/api/v1/runs/{id:int}/preflight-overrides", "Admin"),
        ("POST", "/api/v1/runs/{id:int}/rollback", "Operator"),
        ("POST", "/api/v1/runs/{id:int}/abandon", "Operator"),
        ("POST", "/api/v1/runs/{id:int}/cancel", "Operator"),
        ("POST", "/api/v1/runs/{id:int}/checklist/{itemId:int}", "Operator"),
        ("POST", "/api/v1/runs/{id:int}/schedule", "Operator"),
        ("DELETE", "/api/v1/runs/{id:int}/schedule", "Operator"),
        ("GET", "/api/v1/runs/{id:int}/log", "Viewer"),
        ("GET", "/api/v1/runs/{id:int}/log/stream", "Viewer"),
        ("GET", "/api/v1/targets/{id:int}/webhooks", "Admin"),
        ("POST", "/api/v1/targets/{id:int}/webhooks", "Admin"),
        ("GET", "/api/v1/targets/{id:int}/webhooks/{webhookId:int}", "Admin"),
        ("PATCH", "/api/v1/targets/{id:int}/webhooks/{webhookId:int}", "Admin"),
        ("DELETE", "/api/v1/targets/{id:int}/webhooks/{webhookId:int}", "Admin"),
        ("GET", "/api/v1/targets/{id:int}/webhooks/{webhookId:int}/deliveries", "Admin"),
        ("GET", "/api/v1/targets/{id:int}/notifications/deliveries", "Admin"),
        ("GET", "/api/v1/targets/{id:int}/hosts", "Viewer"),
        ("GET", "/api/v1/targets/{id:int}/cluster", "Viewer"),
        ("POST", "/api/v1/targets/{id:int}/cluster/discover", "Operator"),
        ("POST", "/api/v1/targets/{id:int}/hosts", "Admin"),
        ("POST", "/api/v1/targets/{id:int}/hosts/paste", "Admin"),
        ("DELETE", "/api/v1/targets/{id:int}/hosts/{hostId:int}", "Admin"),
        ("GET", "/api/v1/targets/{id:int}/hosts/{hostId:int}/host-keys", "Admin"),
        ("POST", "/api/v1/targets/{id:int}/hosts/{hostId:int}/pin", "Admin"),
        ("GET", "/api/v1/audit", "Viewer"),
        ("POST", "/api/v1/audit/verify", "Viewer"),
    ];

    private static readonly string[] RoleOrder = ["Viewer", "Operator", "Admin"];
    private static readonly string[] Callers = ["none", .. RoleOrder];

    private readonly UpgradeConsoleApplicationFactory _app = new();
    private readonly Dictionary<string, string> _tokens = [];

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        foreach (var role in RoleOrder)
        {
            _tokens[role] = await ApiTokens.CreateAsync(_app, await _app.SignedInEmailAsync(role), $"{role} token", role);
        }
    }

    [Fact]
    public void TheAppServesExactlyTheEndpointsOfTheTable()
    {
        var served = _app.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText?.StartsWith("/api/v1/", StringComparison.Ordinal) == true && !e.RoutePattern.RawText.Contains("**", StringComparison.Ordinal))
            .SelectMany(e => (e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()?.HttpMethods ?? ["*"]).Select(m => $"{m} {e.RoutePattern.RawText}"))
            .Order().ToList();
        Assert.Equal(Endpoints.Select(e => $"{e.Method} {e.Pattern}").Order().ToList(), served);
    }

    [Fact]
    public async Task EveryEndpoint_RefusesNoTokenAndLowerRoles_AndLetsTheRightRolesThrough()
    {
        var failures = new List<string>();
        foreach (var (method, pattern, role) in Endpoints)
        {
            // Ids that do not exist: the calls that get through change nothing (404, or 400 for an empty body).
            var path = pattern.Replace("{id:int}", "999999", StringComparison.Ordinal).Replace("{userId:int}", "1", StringComparison.Ordinal).Replace("{itemId:int}", "1", StringComparison.Ordinal)
                .Replace("{webhookId:int}", "1", StringComparison.Ordinal).Replace("{hostId:int}", "1", StringComparison.Ordinal);
            foreach (var caller in Callers)
            {
                using var client = ApiTokens.Client(_app.BaseUrl, caller == "none" ? null : _tokens[caller]);
                using var request = new HttpRequestMessage(new HttpMethod(method), path);
                if (method != "GET")
                {
                    request.Content = JsonContent.Create(new { });
                }

                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
                var expected = caller == "none" ? HttpStatusCode.Unauthorized
                    : Array.IndexOf(RoleOrder, caller) < Array.IndexOf(RoleOrder, role) ? HttpStatusCode.Forbidden
                    : (HttpStatusCode?)null;
                var status = response.StatusCode;
                if (expected is { } refusal)
                {
                    if (status != refusal || response.Content.Headers.ContentType?.MediaType != "application/problem+json")
                    {
                        failures.Add($"{method} {path} as {caller}: {(int)status} {response.Content.Headers.ContentType}, expected {(int)refusal} problem");
                    }
                    else if (refusal == HttpStatusCode.Unauthorized && !response.Headers.WwwAuthenticate.Any(h => h.Scheme == "Bearer"))
                    {
                        failures.Add($"{method} {path}: 401 without WWW-Authenticate: Bearer");
                    }
                }
                else if (status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden || (int)status >= 500)
                {
                    failures.Add($"{method} {path} as {caller}: {(int)status}, expected to reach the endpoint");
                }
                else if (pattern.Contains("{id:int}", StringComparison.Ordinal) && status is not (HttpStatusCode.NotFound or HttpStatusCode.BadRequest))
                {
                    failures.Add($"{method} {path} as {caller}: {(int)status}, expected 404 (or 400) for a missing id");
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public async Task ABrowserSession_AGarbageToken_AndAnUnknownPath_GetProblems()
    {
        var ct = TestContext.Current.CancellationToken;
        // The cookie of a signed-in Admin does not open the API (no ambient credentials, so no CSRF).
        var browser = await _app.SignedInClientAsync("Admin");
        using var cookie = await browser.GetAsync("/api/v1/targets", ct);
        Assert.Equal(HttpStatusCode.Unauthorized, cookie.StatusCode);

        using var garbage = ApiTokens.Client(_app.BaseUrl, "uct_not-a-real-token");
        using var refused = await garbage.GetAsync("/api/v1/targets", ct);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        var problem = await refused.Content.ReadFromJsonAsync<JsonElement>(ct);
        Assert.Contains("unknown token", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        using var viewer = ApiTokens.Client(_app.BaseUrl, _tokens["Viewer"]);
        using var missing = await viewer.GetAsync("/api/v1/no-such-thing", ct);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);

        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Action == "api.token-refused" && e.Details.Contains("unknown token", StringComparison.Ordinal));

        // Spraying tokens from one address: every call refused, but the audit history takes only so many a minute.
        for (var i = 0; i < 25; i++)
        {
            using var spray = ApiTokens.Client(_app.BaseUrl, $"uct_guess{i}");
            Assert.Equal(HttpStatusCode.Unauthorized, (await spray.GetAsync("/api/v1/runs", ct)).StatusCode);
        }

        Assert.Equal(UpgradeConsole.Web.Api.RefusedTokenAudit.PerMinute, (await _app.AuditEventsAsync()).Count(e => e.Action == "api.token-refused"));
    }

    [Fact]
    public async Task TheOpenApiDocument_ListsEveryEndpoint_WithTheBearerScheme()
    {
        var ct = TestContext.Current.CancellationToken;
        using var anonymous = ApiTokens.Client(_app.BaseUrl, null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/openapi/v1.json", ct)).StatusCode);

        using var viewer = ApiTokens.Client(_app.BaseUrl, _tokens["Viewer"]);
        var document = await viewer.GetFromJsonAsync<JsonElement>("/openapi/v1.json", ct);
        var listed = document.GetProperty("paths").EnumerateObject()
            .SelectMany(p => p.Value.EnumerateObject().Where(o => o.Name is "get" or "post" or "put" or "patch" or "delete").Select(o => $"{o.Name.ToUpperInvariant()} {p.Name}"))
            .Order().ToList();
        var expected = Endpoints.Select(e => $"{e.Method} {Constraint().Replace(e.Pattern, "}")}").Order().ToList();
        Assert.Equal(expected, listed);
        Assert.Equal("bearer", document.GetProperty("components").GetProperty("securitySchemes").GetProperty("token").GetProperty("scheme").GetString());
        // Each operation says what it does.
        foreach (var path in document.GetProperty("paths").EnumerateObject())
        {
            foreach (var operation in path.Value.EnumerateObject().Where(o => o.Name is "get" or "post" or "put" or "patch"))
            {
                Assert.True(operation.Value.TryGetProperty("summary", out _), $"{operation.Name} {path.Name} has no summary");
            }
        }

        // A signed-in browser may read it too (to explore the API).
        var browser = await _app.SignedInClientAsync("Viewer");
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/openapi/v1.json", ct)).StatusCode);
    }

    [GeneratedRegex(":[a-z]+}")]
    private static partial Regex Constraint();

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
