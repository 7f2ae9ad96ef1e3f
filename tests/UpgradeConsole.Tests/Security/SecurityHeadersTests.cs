using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Security;

public sealed class SecurityHeadersTests : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    [Theory]
    [InlineData("/account/login")]
    [InlineData("/healthz")]
    [InlineData("/")]
    public async Task EveryResponse_CarriesStrictSecurityHeaders(string path)
    {
        var response = await _app.CreateBrowserLikeClient().GetAsync(path);
        AssertStrictPolicy(string.Join(';', response.Headers.GetValues("Content-Security-Policy")));
        Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
        Assert.Equal("same-origin", response.Headers.GetValues("Referrer-Policy").Single());
    }

    /// <summary>
    /// Scripts and connections only from this origin, no eval, no inline script; inline styles are the
    /// one relaxation (MudBlazor's theme and component sizes), written down in ADR 0012.
    /// </summary>
    internal static void AssertStrictPolicy(string csp)
    {
        var directives = csp.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(d => d.Split(' ', 2))
            .ToDictionary(d => d[0], d => d.Length > 1 ? d[1] : "");
        Assert.Equal("'self'", directives["script-src"]);
        Assert.Equal("'self' 'unsafe-inline'", directives["style-src"]);
        Assert.Equal("'self'", directives["connect-src"]);
        Assert.Equal("'self'", directives["default-src"]);
        Assert.Equal("'none'", directives["frame-ancestors"]);
        Assert.Equal("'none'", directives["object-src"]);
        Assert.DoesNotContain("unsafe-eval", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("*", csp, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuthCookie_IsHttpOnlyAndSameSiteStrict()
    {
        await _app.CreateFirstAdminAsync();
        var client = _app.CreateBrowserLikeClient();
        var response = await client.PostFormAsync("/account/login", "login", new()
        {
            ["Input.Email"] = UpgradeConsoleApplicationFactory.AdminEmail,
            ["Input.Password"] = UpgradeConsoleApplicationFactory.AdminPassword,
        });
        var cookie = response.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("UpgradeConsole.Auth=", StringComparison.Ordinal));
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
