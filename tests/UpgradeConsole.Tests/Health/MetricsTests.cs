using System.Net;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Api;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Health;

/// <summary>
/// <c>/metrics</c> for a Prometheus scraper: refused without a token of the Metrics scope (or an Admin's), a Metrics token
/// reads nothing else, only an Admin makes one and it stops when its owner is no longer one; the figures follow what
/// happens (runs by state, log lines stored, the audit chain).
/// </summary>
public sealed class MetricsTests : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        var admin = await _app.CreateFirstAdminAsync();
        await _app.CreateUserAsync(admin, "operator@example.org", Roles.Operator);
        await _app.CreateUserAsync(admin, "viewer@example.org", Roles.Viewer);
    }

    [Fact]
    public async Task OnlyAMetricsTokenOrAnAdminsToken_ReadsTheMetrics_AndAMetricsTokenNothingElse()
    {
        var ct = TestContext.Current.CancellationToken;
        using var anonymous = ApiTokens.Client(_app.BaseUrl, null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/metrics", ct)).StatusCode);
        using var viewer = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, "viewer@example.org", "dashboards", Roles.Viewer));
        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.GetAsync("/metrics", ct)).StatusCode);
        using var operatorApi = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, "operator@example.org", "ci", Roles.Operator));
        Assert.Equal(HttpStatusCode.Forbidden, (await operatorApi.GetAsync("/metrics", ct)).StatusCode);

        // An Operator may not make a Metrics token; an Admin may.
        var refused = await _app.AsAsync<ApiTokenService, TokenResult>("operator@example.org", (tokens, owner) => tokens.CreateAsync(owner, "scraper", TokenScopes.Metrics, 30, ct));
        Assert.False(refused.Succeeded);
        Assert.Contains("Only an Admin may make a Metrics token", string.Join(" ", refused.Errors.SelectMany(e => e.Value)), StringComparison.Ordinal);
        using var scraper = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "prometheus", TokenScopes.Metrics));

        using var metrics = await scraper.GetAsync("/metrics", ct);
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        Assert.StartsWith("text/plain", metrics.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        var text = await metrics.Content.ReadAsStringAsync(ct);
        Assert.Contains("# TYPE upgradeconsole_runs gauge", text, StringComparison.Ordinal);
        Assert.Contains("upgradeconsole_runs{state=\"Running\"} 0", text, StringComparison.Ordinal);

        // The Metrics token reads nothing else.
        foreach (var path in new[] { "/api/v1/runs", "/api/v1/targets", "/api/v1/audit" })
        {
            Assert.Equal(HttpStatusCode.Forbidden, (await scraper.GetAsync(path, ct)).StatusCode);
        }

        // An Admin's own token reads /metrics too.
        using var admin = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "admin", Roles.Admin));
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/metrics", ct)).StatusCode);

        // When the owner is no longer an Admin, the Metrics token stops.
        var second = await _app.CreateUserAsync(await _app.LoginAsAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword), "second-admin@example.org", Roles.Admin);
        Assert.NotEmpty(second);
        using var secondScraper = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, "second-admin@example.org", "prometheus", TokenScopes.Metrics));
        Assert.Equal(HttpStatusCode.OK, (await secondScraper.GetAsync("/metrics", ct)).StatusCode);
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var accounts = scope.ServiceProvider.GetRequiredService<UserAdministration>();
            var id = (await accounts.ListAsync()).Single(u => u.Email == "second-admin@example.org").Id;
            Assert.True((await accounts.SetRoleAsync(id, Roles.Operator)).Succeeded);
        }

        using var afterDemotion = await secondScraper.GetAsync("/metrics", ct);
        Assert.Equal(HttpStatusCode.Unauthorized, afterDemotion.StatusCode);
        Assert.Contains("a metrics token's owner must be an Admin", await afterDemotion.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheFigures_FollowWhatHappens()
    {
        var ct = TestContext.Current.CancellationToken;
        using var scraper = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "prometheus", TokenScopes.Metrics));
        var before = await ScrapeAsync(scraper, ct);

        var (runId, phases) = await RunSeed.AddRunningRunAsync(_app.Services);
        var writer = new RunLogWriter(_app.Services.GetRequiredService<IServiceScopeFactory>(), runId, [], TimeProvider.System);
        for (var i = 0; i < 250; i++)
        {
            await writer.WriteAsync(phases[0], $"line {i}", ct: ct);
        }

        await writer.FlushAsync(ct);
        var after = await ScrapeAsync(scraper, ct);

        Assert.Equal(Value(before, "upgradeconsole_runs{state=\"Running\"}") + 1, Value(after, "upgradeconsole_runs{state=\"Running\"}"));
        Assert.Equal(Value(before, "upgradeconsole_runs_active") + 1, Value(after, "upgradeconsole_runs_active"));
        Assert.Equal(Value(before, "upgradeconsole_log_lines_stored_total") + 250, Value(after, "upgradeconsole_log_lines_stored_total"));
        Assert.True(Value(after, "upgradeconsole_audit_chain_length") >= Value(before, "upgradeconsole_audit_chain_length") && Value(before, "upgradeconsole_audit_chain_length") > 0);
        Assert.Contains("upgradeconsole_jobs{state=\"enqueued\"}", after, StringComparison.Ordinal);
        Assert.Contains("upgradeconsole_targets{host_key=", after, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnAllowedNetwork_ScrapesWithoutAToken()
    {
        await using var app = new UpgradeConsoleApplicationFactory().WithSetting("UpgradeConsole:Metrics:AllowedNetworks:0", "127.0.0.0/8");
        app.ServeOverKestrel();
        await app.CreateFirstAdminAsync();
        using var anonymous = ApiTokens.Client(app.BaseUrl, null);
        using var metrics = await anonymous.GetAsync("/metrics", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        Assert.Contains("upgradeconsole_runs_active", await metrics.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
        // The network lets scrapers in, no one else: the API still wants a token.
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/v1/runs", TestContext.Current.CancellationToken)).StatusCode);
    }

    private static async Task<string> ScrapeAsync(HttpClient client, CancellationToken ct)
    {
        using var response = await client.GetAsync("/metrics", ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync(ct);
    }

    private static double Value(string text, string series)
    {
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        return line is null ? 0 : double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
