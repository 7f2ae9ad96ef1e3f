using System.Net;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Security;

/// <summary>
/// Form posts without an antiforgery token are refused with 400 — also on endpoints that bind form
/// fields, where the framework's own check throws — and the antiforgery cookie is Secure behind TLS.
/// </summary>
public sealed class FormTokensTests : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private HttpClient _admin = default!;

    public async ValueTask InitializeAsync() => _admin = await _app.SignedInClientAsync("Admin");

    [Theory]
    [InlineData("/account/logout", "")]
    [InlineData("/account/password", "_handler=change-password&Input.Current=x")]
    public async Task FormPost_WithoutToken_Is400NotAServerError(string path, string body)
    {
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/x-www-form-urlencoded");
        using var response = await _admin.PostAsync(path, content, TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    [Fact]
    public async Task AntiforgeryCookie_WithRequireHttps_IsSecure()
    {
        await using var app = new UpgradeConsoleApplicationFactory().WithSetting("UpgradeConsole:RequireHttps", "true");
        using var client = app.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { BaseAddress = new Uri("https://localhost"), AllowAutoRedirect = false });
        using var response = await client.GetAsync("/account/login", TestContext.Current.CancellationToken);
        var cookie = response.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("UpgradeConsole.Antiforgery=", StringComparison.Ordinal));
        Assert.Contains("; secure", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
