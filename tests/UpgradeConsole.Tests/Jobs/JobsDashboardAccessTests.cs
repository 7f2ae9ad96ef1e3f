using System.Net;
using System.Text.RegularExpressions;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Jobs;

namespace UpgradeConsole.Tests.Jobs;

/// <summary>
/// Hangfire's dashboard at /jobs through the dashboard's own sign-in: Admins act, Operators only look,
/// Viewers and anonymous callers get nothing; its relaxed Content-Security-Policy applies there only.
/// </summary>
public sealed partial class JobsDashboardAccessTests : IAsyncLifetime
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

    [Fact]
    public async Task Anonymous_IsSentToSignIn()
    {
        var response = await _app.CreateBrowserLikeClient().GetAsync("/jobs/recurring");
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/account/login", response.Headers.Location?.AbsolutePath);
    }

    [Fact]
    public async Task Viewer_IsRefused()
    {
        foreach (var path in new[] { "/jobs", "/jobs/recurring", "/jobs/stats" })
        {
            var response = await _clients[Roles.Viewer].GetAsync(path);
            await response.ExpectRedirectAsync($"/account/access-denied?ReturnUrl={Uri.EscapeDataString(path)}");
        }
    }

    [Fact]
    public async Task Admin_SeesTheRecurringJobs_AndMayTriggerThem()
    {
        var response = await _clients[Roles.Admin].GetAsync("/jobs/recurring");
        var html = await response.ExpectOkAsync();
        Assert.Contains("runs-recover", html, StringComparison.Ordinal);
        Assert.Contains("housekeeping", html, StringComparison.Ordinal);
        Assert.Contains("recurring/trigger", html, StringComparison.Ordinal);
        Assert.Equal(JobsSetup.DashboardContentSecurityPolicy, response.Headers.GetValues("Content-Security-Policy").Single());
        // No inline script: the relaxed policy still allows scripts from this origin only.
        Assert.DoesNotMatch(InlineScript(), html);

        var trigger = await TriggerHousekeepingAsync(_clients[Roles.Admin], html);
        Assert.True(trigger.IsSuccessStatusCode, $"{(int)trigger.StatusCode}: {await trigger.Content.ReadAsStringAsync()}");
        await _app.Logs.WaitForAsync("Housekeeping deleted");
    }

    [Fact]
    public async Task Operator_SeesTheJobs_ReadOnly()
    {
        var response = await _clients[Roles.Operator].GetAsync("/jobs/recurring");
        var html = await response.ExpectOkAsync();
        Assert.Contains("runs-recover", html, StringComparison.Ordinal);
        Assert.DoesNotContain("recurring/trigger", html, StringComparison.Ordinal);

        // Asking anyway (with the page's own antiforgery token) is refused.
        var trigger = await TriggerHousekeepingAsync(_clients[Roles.Operator], html);
        Assert.True(trigger.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden, $"an Operator's trigger answered {(int)trigger.StatusCode}");
    }

    [Fact]
    public async Task TheRestOfTheDashboard_KeepsTheStrictPolicy()
    {
        var response = await _clients[Roles.Admin].GetAsync("/runs");
        await response.ExpectOkAsync();
        Assert.Equal(SecurityHeaders.ContentSecurityPolicy, response.Headers.GetValues("Content-Security-Policy").Single());
    }

    /// <summary>Hangfire's own command post, with the antiforgery token its page carries (as its script sends it).</summary>
    private static Task<HttpResponseMessage> TriggerHousekeepingAsync(HttpClient client, string page) => TriggerAsync(client, page, Housekeeping.JobId);

    /// <summary>Triggers the recurring job <paramref name="jobId"/> as the page /jobs/recurring does (read <paramref name="page"/> first).</summary>
    internal static async Task<HttpResponseMessage> TriggerAsync(HttpClient client, string page, string jobId)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/jobs/recurring/trigger")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["jobs[]"] = jobId }),
        };
        var header = AntiforgeryHeader().Match(page);
        var token = AntiforgeryToken().Match(page);
        Assert.True(header.Success && token.Success, "the page carries no antiforgery token");
        request.Headers.Add(WebUtility.HtmlDecode(header.Groups[1].Value), WebUtility.HtmlDecode(token.Groups[1].Value));

        return await client.SendAsync(request);
    }

    [GeneratedRegex("""<script(?![^>]*\ssrc=)[^>]*>""")]
    private static partial Regex InlineScript();

    [GeneratedRegex("""<meta name="csrf-header" content="([^"]+)""")]
    private static partial Regex AntiforgeryHeader();

    [GeneratedRegex("""<meta name="csrf-token" content="([^"]+)""")]
    private static partial Regex AntiforgeryToken();

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
