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

    [Fact]
    public async Task UsersPage_IsRenderedForTheAdmin_WithEveryUser()
    {
        // The page is interactive; its first response is still the whole table, rendered on the server.
        var users = await _clients[Roles.Admin].GetStringAsync("/admin/users");
        Assert.Matches("data-email=\"viewer@example.org\"[\\s\\S]*?<option value=\"Viewer\" selected", users);
        Assert.NotEmpty(await FindUserIdAsync("operator@example.org"));
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
