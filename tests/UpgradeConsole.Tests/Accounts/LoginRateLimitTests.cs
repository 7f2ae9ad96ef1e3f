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

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
