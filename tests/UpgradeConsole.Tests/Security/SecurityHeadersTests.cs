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
        var csp = string.Join(';', response.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("style-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-eval", csp, StringComparison.Ordinal);
        Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
        Assert.Equal("same-origin", response.Headers.GetValues("Referrer-Policy").Single());
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
