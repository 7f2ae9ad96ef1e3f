using System.Text.RegularExpressions;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Api;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Api;

/// <summary>
/// Personal API tokens: made on the interactive account page and shown once (in the circuit only), stored as a hash, never above the
/// owner's role (then or later), refused when expired, revoked or when the owner is disabled, and
/// every call audited with the token.
/// </summary>
public sealed class ApiTokensTests(Chromium chromium) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();

    public ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task AUserMakesATokenInTheBrowser_SeesItOnce_UsesIt_AndRevokesIt()
    {
        var ct = TestContext.Current.CancellationToken;
        await _app.SignedInClientAsync("Operator");
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await Accounts.SigningInTests.SignInAsync(page, "operator@example.org", await PasswordOfAsync("operator@example.org"));
        await page.WaitForInteractiveAsync();
        await page.ClickAsync("#uc-user-menu");
        await page.ClickAsync("a[href='/account/tokens']");
        // An Operator cannot ask for an Admin token.
        await page.WaitForAddressAsync(new Regex("/account/tokens$"));
        await page.WaitForInteractiveAsync();
        await Assertions.Expect(page.Locator("#token-role option")).ToHaveTextAsync(["Operator", "Viewer"]);
        await page.FillAsync("#token-name", "nightly CI");
        await page.SelectOptionAsync("#token-role", "Operator");
        await page.SelectOptionAsync("#token-expiry", "30");
        await page.ClickAsync("#create-token");
        var secret = (await page.GetByTestId("token-secret").TextContentAsync())!.Trim();
        Assert.StartsWith("uct_", secret, StringComparison.Ordinal);

        // Only its hash is stored; the list shows a prefix, and the secret never again.
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var row = await db.ApiTokens.SingleAsync(ct);
            Assert.Equal(UpgradeConsole.Web.Api.ApiTokenService.HashOf(secret), row.Hash);
            Assert.DoesNotContain(secret[4..], JsonSerializer.Serialize(row), StringComparison.Ordinal);
            Assert.Equal("Operator", row.Role);
            Assert.InRange((row.ExpiresAt!.Value - row.CreatedAt).TotalDays, 29.9, 30.1);
        }

        // A reload neither shows it again nor makes a second token (the secret lived only in the circuit).
        await page.ReloadAsync();
        await page.WaitForInteractiveAsync();
        Assert.DoesNotContain(secret, await page.ContentAsync(), StringComparison.Ordinal);
        await Assertions.Expect(page.GetByTestId("token-row")).ToHaveCountAsync(1);
        var listed = page.GetByTestId("token-row");
        await Assertions.Expect(listed).ToContainTextAsync(secret[..10]);
        await Assertions.Expect(listed.GetByTestId("token-status")).ToHaveTextAsync("active");

        using var api = ApiTokens.Client(_app.BaseUrl, secret);
        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("/api/v1/runbooks", ct)).StatusCode);
        // A write (refused: an Operator adds no targets) is one audit event each; reads are counted per minute.
        Assert.Equal(HttpStatusCode.Forbidden, (await api.PostAsJsonAsync("/api/v1/targets", new { }, ct)).StatusCode);

        // Revoking asks first.
        await listed.GetByTestId("revoke-token").ClickAsync();
        var dialog = page.Locator(".mud-dialog");
        await Assertions.Expect(dialog).ToContainTextAsync("Revoke nightly CI? Scripts using it stop at once.");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Revoke", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByTestId("token-message")).ToContainTextAsync("revoked");
        await Assertions.Expect(listed.GetByTestId("token-status")).ToHaveTextAsync("revoked");
        using var after = await api.GetAsync("/api/v1/runbooks", ct);
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
        Assert.Contains("revoked token", (await after.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("detail").GetString(), StringComparison.Ordinal);

        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Action == "token.create" && e.Actor == "operator@example.org" && e.Details.Contains("nightly CI", StringComparison.Ordinal));
        Assert.Contains(events, e => e.Action == "token.revoke" && e.Actor == "operator@example.org");
        // The call made with it names the token; the audit never holds the secret.
        Assert.Contains(events, e => e.Action == "api.call" && e.Actor == "operator@example.org" && e.Details.Contains("\"apiToken\":{\"id\":", StringComparison.Ordinal) && e.Details.Contains("nightly CI", StringComparison.Ordinal));
        Assert.DoesNotContain(events, e => e.Details.Contains(secret, StringComparison.Ordinal));
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    [Fact]
    public async Task ATokenNeverDoesMoreThanItsOwner_NowOrAfterADemotion()
    {
        var ct = TestContext.Current.CancellationToken;
        var admin = await _app.SignedInClientAsync("Admin");
        var operatorEmail = await _app.SignedInEmailAsync("Operator");

        // Asking for more than one's role is refused by the service, whatever the form offered.
        var refused = await _app.AsAsync<ApiTokenService, TokenResult>(operatorEmail, (t, owner) => t.CreateAsync(owner, "too much", "Admin", 7, ct));
        Assert.False(refused.Succeeded);
        Assert.Contains("cannot do more than its owner", string.Join(" ", refused.Errors.SelectMany(e => e.Value)), StringComparison.Ordinal);
        Assert.Null(refused.Created);

        // The role that caps a token is the one held now: a tab opened as Operator, then demoted, gets no Operator token.
        var openTab = await _app.PrincipalOfAsync(operatorEmail);
        await SetRoleAsync(operatorEmail, "Viewer");
        var stale = await _app.AsAsync<ApiTokenService, TokenResult>(operatorEmail, (t, _) => t.CreateAsync(openTab, "after demotion", "Operator", 7, ct));
        Assert.Contains("you are Viewer", string.Join(" ", stale.Errors.SelectMany(e => e.Value)), StringComparison.Ordinal);

        // An Admin token of a user later made Viewer acts as a Viewer; disabling the user stops it.
        await _app.CreateUserAsync(admin, "ada@example.org", "Admin");
        var token = await ApiTokens.CreateAsync(_app, "ada@example.org", "ada's admin token", "Admin");
        using var api = ApiTokens.Client(_app.BaseUrl, token);
        using var asAdmin = await api.PostAsJsonAsync("/api/v1/targets", new { }, ct);
        Assert.Equal(HttpStatusCode.BadRequest, asAdmin.StatusCode);

        await SetRoleAsync("ada@example.org", "Viewer");
        using var demoted = await api.PostAsJsonAsync("/api/v1/targets", new { }, ct);
        Assert.Equal(HttpStatusCode.Forbidden, demoted.StatusCode);
        Assert.Contains("(Viewer)", (await demoted.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("/api/v1/targets", ct)).StatusCode);

        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var users = scope.ServiceProvider.GetRequiredService<UserAdministration>();
            var id = (await users.ListAsync(ct)).Single(u => u.Email == "ada@example.org").Id;
            Assert.True((await users.SetDisabledAsync(id, true)).Succeeded);
        }

        using var disabled = await api.GetAsync("/api/v1/targets", ct);
        Assert.Equal(HttpStatusCode.Unauthorized, disabled.StatusCode);
        Assert.Contains("disabled", (await disabled.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnAdminSeesEveryonesTokens_AndRevokesOne_OthersCannot()
    {
        var ct = TestContext.Current.CancellationToken;
        var admin = await _app.SignedInClientAsync("Admin");
        var viewerEmail = await _app.SignedInEmailAsync("Viewer");
        var operatorClient = await _app.SignedInClientAsync("Operator");
        var token = await ApiTokens.CreateAsync(_app, viewerEmail, "viewer's dashboard script", "Viewer");
        using var api = ApiTokens.Client(_app.BaseUrl, token);
        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("/api/v1/runs", ct)).StatusCode);
        int id;
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            id = (await scope.ServiceProvider.GetRequiredService<AppDbContext>().ApiTokens.SingleAsync(ct)).Id;
        }

        // Another non-admin neither sees it (the page as served) nor can revoke it (the service, whatever a page sends).
        Assert.DoesNotContain("viewer&#x27;s dashboard script", await operatorClient.GetStringAsync("/account/tokens", ct), StringComparison.Ordinal);
        var forged = await _app.AsAsync<ApiTokenService, string?>("operator@example.org", (t, a) => t.RevokeAsync(id, a, ct));
        Assert.Equal("No such token.", forged);
        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("/api/v1/runs", ct)).StatusCode);

        // The Admin sees it with its owner, and revokes it.
        var adminPage = WebUtility.HtmlDecode(await admin.GetStringAsync("/account/tokens", ct));
        Assert.Contains("viewer's dashboard script", adminPage, StringComparison.Ordinal);
        Assert.Contains("viewer@example.org", adminPage, StringComparison.Ordinal);
        Assert.Null(await _app.AsAsync<ApiTokenService, string?>(UpgradeConsoleApplicationFactory.AdminEmail, (t, a) => t.RevokeAsync(id, a, ct)));
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.GetAsync("/api/v1/runs", ct)).StatusCode);
        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Action == "token.revoke" && e.Actor == UpgradeConsoleApplicationFactory.AdminEmail && e.Details.Contains("viewer@example.org", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AnExpiredToken_IsRefused_AndTheRefusalIsAudited()
    {
        var ct = TestContext.Current.CancellationToken;
        var token = await ApiTokens.CreateAsync(_app, await _app.SignedInEmailAsync("Viewer"), "short-lived", "Viewer", expiresInDays: 7);
        using var api = ApiTokens.Client(_app.BaseUrl, token);
        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("/api/v1/runs", ct)).StatusCode);

        // Eight days later (the expiry moved back, as time would).
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var row = await db.ApiTokens.SingleAsync(ct);
            row.ExpiresAt = DateTimeOffset.UnixEpoch.AddYears(50);
            await db.SaveChangesAsync(ct);
        }

        using var expired = await api.GetAsync("/api/v1/runs", ct);
        Assert.Equal(HttpStatusCode.Unauthorized, expired.StatusCode);
        Assert.Contains("expired token", (await expired.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("detail").GetString(), StringComparison.Ordinal);
        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Action == "api.token-refused" && e.Details.Contains("expired token", StringComparison.Ordinal) && e.Subject!.Contains("short-lived", StringComparison.Ordinal));
    }

    private async Task<string> PasswordOfAsync(string email)
    {
        // Reset through the admin service: the test knows no generated password otherwise.
        await using var scope = _app.Services.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<AppUser>>();
        var user = (await users.FindByEmailAsync(email))!;
        const string password = "a long test password 42";
        await users.RemovePasswordAsync(user);
        Assert.True((await users.AddPasswordAsync(user, password)).Succeeded);
        return password;
    }

    private async Task SetRoleAsync(string email, string role)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<UserAdministration>();
        var id = (await users.ListAsync(TestContext.Current.CancellationToken)).Single(u => u.Email == email).Id;
        Assert.True((await users.SetRoleAsync(id, role)).Succeeded);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
