using System.Net;
using System.Security.Claims;
using System.Text;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Api;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Security;

/// <summary>
/// Security findings 4 and 7: connections that outlive the request that opened them. A disabled or demoted person's open
/// live-log connection, and a revoked token's event stream, are closed within the revalidation interval (a minute in
/// production, a second here); event streams end on runs that are not moving and are capped per token.
/// </summary>
public sealed class LiveConnectionsTests : IAsyncLifetime
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(30);

    private readonly UpgradeConsoleApplicationFactory _app = new UpgradeConsoleApplicationFactory()
        .WithSetting("UpgradeConsole:LiveConnections:RevalidationInterval", "00:00:01")
        .WithSetting("UpgradeConsole:LiveConnections:MaxStreamsPerPrincipal", "3");

    private readonly Dictionary<string, string> _passwords = [];
    private int _runId;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        var admin = await _app.CreateFirstAdminAsync();
        _passwords["viewer@example.org"] = await _app.CreateUserAsync(admin, "viewer@example.org", Roles.Viewer);
        _passwords["operator@example.org"] = await _app.CreateUserAsync(admin, "operator@example.org", Roles.Operator);
        (_runId, _) = await RunSeed.AddRunningRunAsync(_app.Services);
    }

    [Fact]
    public async Task DisablingAPerson_ClosesTheirOpenLiveLogConnection_AndNobodyElses()
    {
        await using var viewer = await JoinedAsync("viewer@example.org");
        await using var admin = await JoinedAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);

        await WithUsersAsync(async users => Assert.True((await users.SetDisabledAsync(await IdOfAsync("viewer@example.org"), true)).Succeeded));

        await viewer.Closed.WaitAsync(Soon);
        Assert.False(admin.Closed.IsCompleted);
        Assert.Empty(await admin.InvokeAsync<List<LogChunk>>(nameof(RunLogHub.Fetch), _runId, 0L));
        // And it cannot come back: a new negotiate is refused.
        await using var again = new HubClient();
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => again.StartAsync(_app.BaseUrl, RunLogHub.Path, _viewerCookies));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }

    [Fact]
    public async Task DemotingAnOperator_ClosesTheirLiveLogConnection_SoItReconnectsWithTheNewRole()
    {
        await using var operatorConnection = await JoinedAsync("operator@example.org");
        await WithUsersAsync(async users => Assert.True((await users.SetRoleAsync(await IdOfAsync("operator@example.org"), Roles.Viewer)).Succeeded));
        await operatorConnection.Closed.WaitAsync(Soon);
    }

    [Fact]
    public async Task RevokingAToken_EndsItsEventStream_SayingWhy()
    {
        var ct = TestContext.Current.CancellationToken;
        var (tokenId, secret) = await TokenAsync("operator@example.org", Roles.Operator);
        using var api = ApiTokens.Client(_app.BaseUrl, secret);
        using var response = await api.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"/api/v1/runs/{_runId}/log/stream"), HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct), Encoding.UTF8);

        await using (var scope = _app.Services.CreateAsyncScope())
        {
            Assert.Null(await scope.ServiceProvider.GetRequiredService<ApiTokenService>().RevokeAsync(tokenId, await PrincipalAsync(UpgradeConsoleApplicationFactory.AdminEmail, Roles.Admin), ct));
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Soon);
        var events = new List<string>();
        while (await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                events.Add(line[7..]);
            }
        }

        Assert.Equal("closed", events[^1]);
        Assert.DoesNotContain("end", events);
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.GetAsync($"/api/v1/runs/{_runId}/log/stream", ct)).StatusCode);
    }

    [Fact]
    public async Task APlannedRunsStream_EndsAtOnce_InsteadOfWaitingForever()
    {
        var ct = TestContext.Current.CancellationToken;
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var run = await db.Runs.SingleAsync(r => r.Id == _runId, ct);
            run.State = RunState.Planned;
            await db.SaveChangesAsync(ct);
        }

        var (_, secret) = await TokenAsync("viewer@example.org", Roles.Viewer);
        using var api = ApiTokens.Client(_app.BaseUrl, secret);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Soon);
        var body = await api.GetStringAsync($"/api/v1/runs/{_runId}/log/stream", timeout.Token);
        Assert.Contains("event: end", body, StringComparison.Ordinal);
        Assert.Contains("\"state\":\"Planned\"", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OneTokenHoldsAtMostItsShareOfStreams_TheNextGets429WithRetryAfter_OthersStillGetIn()
    {
        var ct = TestContext.Current.CancellationToken;
        var (_, secret) = await TokenAsync("viewer@example.org", Roles.Viewer);
        var open = new List<(HttpClient Client, HttpResponseMessage Response)>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var client = ApiTokens.Client(_app.BaseUrl, secret);
                var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"/api/v1/runs/{_runId}/log/stream"), HttpCompletionOption.ResponseHeadersRead, ct);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                open.Add((client, response));
            }

            using var fourth = ApiTokens.Client(_app.BaseUrl, secret);
            using var refused = await fourth.GetAsync($"/api/v1/runs/{_runId}/log/stream", ct);
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero);
            Assert.Contains("log streams", await refused.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);

            // Another token has its own share.
            var (_, other) = await TokenAsync("operator@example.org", Roles.Operator);
            using var otherClient = ApiTokens.Client(_app.BaseUrl, other);
            using var otherStream = await otherClient.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"/api/v1/runs/{_runId}/log/stream"), HttpCompletionOption.ResponseHeadersRead, ct);
            Assert.Equal(HttpStatusCode.OK, otherStream.StatusCode);

            // A closed stream gives its place back.
            open[0].Response.Dispose();
            open[0].Client.Dispose();
            open.RemoveAt(0);
            await Eventually.TrueAsync(async () =>
            {
                using var probe = ApiTokens.Client(_app.BaseUrl, secret);
                using var attempt = await probe.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"/api/v1/runs/{_runId}/log/stream"), HttpCompletionOption.ResponseHeadersRead, ct);
                return attempt.StatusCode == HttpStatusCode.OK;
            }, Soon);
        }
        finally
        {
            foreach (var (client, response) in open)
            {
                response.Dispose();
                client.Dispose();
            }
        }
    }

    private System.Net.CookieContainer? _viewerCookies;

    private async Task<HubClient> JoinedAsync(string email, string? password = null)
    {
        var cookies = await RunSeed.SignInCookiesAsync(_app.BaseUrl, email, password ?? _passwords[email]);
        if (email == "viewer@example.org")
        {
            _viewerCookies = cookies;
        }

        var connection = new HubClient();
        await connection.StartAsync(_app.BaseUrl, RunLogHub.Path, cookies);
        await connection.InvokeAsync<List<LogChunk>>(nameof(RunLogHub.Join), _runId, 0L);
        return connection;
    }

    private async Task<(int Id, string Secret)> TokenAsync(string email, string role)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var result = await scope.ServiceProvider.GetRequiredService<ApiTokenService>()
            .CreateAsync(await PrincipalAsync(email, role), "stream test", role, 1, TestContext.Current.CancellationToken);
        Assert.True(result.Succeeded, string.Join("; ", result.Errors.SelectMany(e => e.Value)));
        return (result.Created!.Token.Id, result.Created.Secret);
    }

    private async Task<ClaimsPrincipal> PrincipalAsync(string email, string role) =>
        new(new ClaimsIdentity([new(ClaimTypes.NameIdentifier, await IdOfAsync(email)), new(ClaimTypes.Name, email), new(ClaimTypes.Role, role)], "test"));

    private async Task<string> IdOfAsync(string email)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        return (await scope.ServiceProvider.GetRequiredService<UserManager<AppUser>>().FindByEmailAsync(email))!.Id;
    }

    private async Task WithUsersAsync(Func<UserAdministration, Task> action)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        await action(scope.ServiceProvider.GetRequiredService<UserAdministration>());
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
