using System.Net;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Security;

/// <summary>Who may open which page and use which admin action: Viewer, Operator and Admin.</summary>
public sealed class AdminPagesRoleMatrixTests : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private readonly Dictionary<string, HttpClient> _clients = [];

    public async ValueTask InitializeAsync()
    {
        foreach (var role in Roles.All)
        {
            _clients[role] = await _app.SignedInClientAsync(role);
        }
    }

    public static TheoryData<string, string, bool> Pages => new()
    {
        { "/admin", Roles.Admin, true },
        { "/admin", Roles.Operator, false },
        { "/admin", Roles.Viewer, false },
        { "/admin/users", Roles.Admin, true },
        { "/admin/users", Roles.Operator, false },
        { "/admin/users", Roles.Viewer, false },
        { "/", Roles.Viewer, true },
        { "/targets", Roles.Viewer, true },
        { "/runs", Roles.Viewer, true },
        { "/audit", Roles.Viewer, true },
        { "/account/password", Roles.Viewer, true },
    };

    [Theory]
    [MemberData(nameof(Pages))]
    public async Task Page_ForRole_IsShownOrDenied(string path, string role, bool allowed)
    {
        var response = await _clients[role].GetAsync(path);
        if (allowed)
        {
            await response.ExpectOkAsync();
        }
        else
        {
            await response.ExpectRedirectAsync($"/account/access-denied?ReturnUrl={Uri.EscapeDataString(path)}");
        }
    }

    [Theory]
    [InlineData(Roles.Operator)]
    [InlineData(Roles.Viewer)]
    public async Task AdminActions_ForNonAdmin_AreForbidden(string role)
    {
        var target = await FindUserIdAsync("viewer@example.org");
        foreach (var action in new[] { "role", "disable", "enable", "unlock", "reset-password" })
        {
            var response = await _clients[role].HtmxPostAsync($"/admin/users/{target}/{action}", "/account/password", new() { ["role"] = "Admin" });
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{role} {action}: {(int)response.StatusCode}");
        }

        // And nothing changed: the viewer is still a Viewer.
        var admin = await _app.LoginAsAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        var users = await admin.GetStringAsync("/admin/users");
        Assert.Matches("data-email=\"viewer@example.org\"[\\s\\S]*?<option value=\"Viewer\" selected", users);
    }

    [Fact]
    public async Task AdminAction_WithoutAntiforgeryToken_IsRejected()
    {
        var target = await FindUserIdAsync("viewer@example.org");
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/admin/users/{target}/disable");
        request.Headers.Add("HX-Request", "true");
        var response = await _clients[Roles.Admin].SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task AdminAction_ByAdmin_ReturnsTheUpdatedRow()
    {
        var target = await FindUserIdAsync("operator@example.org");
        var response = await _clients[Roles.Admin].HtmxPostAsync($"/admin/users/{target}/role", "/admin/users", new() { ["role"] = "Viewer" });
        var row = await response.ExpectOkAsync();
        Assert.StartsWith("<tr id=\"user-", row.TrimStart(), StringComparison.Ordinal);
        Assert.Contains("Role set to Viewer.", row, StringComparison.Ordinal);
    }

    private async Task<string> FindUserIdAsync(string email)
    {
        var html = await _clients[Roles.Admin].GetStringAsync("/admin/users");
        var match = System.Text.RegularExpressions.Regex.Match(html, $"<tr id=\"user-([^\"]+)\" data-testid=\"user-row\" data-email=\"{System.Text.RegularExpressions.Regex.Escape(email)}\"");
        Assert.True(match.Success, html);
        return match.Groups[1].Value;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
