using System.Net;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Accounts;

/// <summary>Password spraying from one address is slowed down: sign-in posts are rate limited per client.</summary>
public sealed class LoginRateLimitTests : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    [Fact]
    public async Task LoginForm_MoreThanTenPostsAMinute_AreRefusedWith429()
    {
        var client = _app.CreateBrowserLikeClient();
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 12; i++)
        {
            var response = await client.PostFormAsync("/account/login", "login", new()
            {
                ["Input.Email"] = $"nobody{i}@example.org",
                ["Input.Password"] = "whatever it is",
            });
            statuses.Add(response.StatusCode);
        }

        Assert.All(statuses.Take(10), s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.Equal(HttpStatusCode.TooManyRequests, statuses[10]);
        Assert.Equal(HttpStatusCode.TooManyRequests, statuses[11]);
        // Reading the page is not limited.
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/account/login")).StatusCode);
    }

    [Fact]
    public async Task LoginForm_ForwardedForHeadersFromAnUnconfiguredProxy_AreIgnored()
    {
        // Over a real socket from 127.0.0.1: a local user claiming another client address with every
        // post must still count as one client (no proxy is configured, so none is trusted).
        await using var app = new UpgradeConsoleApplicationFactory();
        app.ServeOverKestrel();
        var client = app.CreateBrowserLikeClient();
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 12; i++)
        {
            client.DefaultRequestHeaders.Remove("X-Forwarded-For");
            client.DefaultRequestHeaders.Add("X-Forwarded-For", $"203.0.113.{i + 1}");
            var response = await client.PostFormAsync("/account/login", "login", new()
            {
                ["Input.Email"] = $"nobody{i}@example.org",
                ["Input.Password"] = "whatever it is",
            });
            statuses.Add(response.StatusCode);
        }

        var events = await app.AuditEventsAsync();
        Assert.True(statuses[10] == HttpStatusCode.TooManyRequests, string.Join(", ", statuses));
        Assert.DoesNotContain(events, e => e.Details.Contains("203.0.113.", StringComparison.Ordinal));
    }

    [Fact]
    public async Task LoginForm_BehindAConfiguredProxy_RecordsTheForwardedClientAddress()
    {
        // Array settings bind from indexed keys, as UpgradeConsole__KnownProxies__0 does in the environment.
        await using var app = new UpgradeConsoleApplicationFactory().WithSetting("UpgradeConsole:KnownProxies:0", "127.0.0.1");
        app.ServeOverKestrel();
        var client = app.CreateBrowserLikeClient();
        client.DefaultRequestHeaders.Add("X-Forwarded-For", "203.0.113.77");
        await client.PostFormAsync("/account/login", "login", new() { ["Input.Email"] = "nobody@example.org", ["Input.Password"] = "whatever it is" });
        Assert.Contains(await app.AuditEventsAsync(), e => e.Action == "account.login-failed" && e.Details.Contains("\"address\":\"203.0.113.77\"", StringComparison.Ordinal));
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
