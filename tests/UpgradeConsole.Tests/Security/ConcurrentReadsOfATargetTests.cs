using System.Net;
using System.Net.Http.Headers;
using System.Security.Claims;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Api;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Security;

/// <summary>
/// Security finding 3: twenty concurrent Viewer reads of a target's Fractal users gave 500s and 502s and starved an
/// Operator's preflight. People's work on a target now goes through a bounded queue: fifty concurrent reads over a real
/// sshd and a real PostgreSQL answer 200 or 503 with Retry-After and a reason, never a 500 or 502, and never more than
/// the bound run on the target at once.
/// </summary>
public sealed class ConcurrentReadsOfATargetTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new UpgradeConsoleApplicationFactory()
        .WithSetting("UpgradeConsole:TargetWork:MaxConcurrent", "4")
        .WithSetting("UpgradeConsole:TargetWork:MaxWaiting", "16")
        .WithSetting("UpgradeConsole:TargetWork:MaxWait", "00:00:30");

    private FractalTarget _fractal = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        var admin = await _app.CreateFirstAdminAsync();
        await _app.CreateUserAsync(admin, "viewer@example.org", Roles.Viewer);
        _fractal = await FractalTarget.CreateAsync(_app, admin, ssh, postgres);
    }

    [Fact]
    public async Task FiftyConcurrentViewerReads_AnswerOrAreToldToWait_NeverFail_AndTheTargetSeesAtMostTheBound()
    {
        var ct = TestContext.Current.CancellationToken;
        var token = await TokenAsync();
        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(async _ =>
        {
            using var client = new HttpClient { BaseAddress = new Uri(_app.BaseUrl), Timeout = TimeSpan.FromMinutes(5) };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await client.GetAsync($"/api/v1/targets/{_fractal.TargetId}/fractal/users", ct);
            return (response.StatusCode, RetryAfter: response.Headers.RetryAfter?.Delta, Body: await response.Content.ReadAsStringAsync(ct));
        }));

        var unexpected = responses.Where(r => r.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable)).ToList();
        Assert.True(unexpected.Count == 0, string.Join("\n", unexpected.Select(r => $"{(int)r.StatusCode}: {r.Body}")));
        Assert.True(responses.Count(r => r.StatusCode == HttpStatusCode.OK) >= 4, "fewer reads answered than the bound lets through");
        Assert.All(responses.Where(r => r.StatusCode == HttpStatusCode.ServiceUnavailable), r =>
        {
            Assert.True(r.RetryAfter > TimeSpan.Zero, "a refusal without Retry-After");
            Assert.Contains("Try again in a few seconds", r.Body, StringComparison.Ordinal);
        });
        Assert.All(responses.Where(r => r.StatusCode == HttpStatusCode.OK), r => Assert.Contains("\"email\"", r.Body, StringComparison.Ordinal));

        var peak = _app.Services.GetRequiredService<TargetWorkLimiter>().PeakConcurrent(_fractal.TargetId);
        Assert.InRange(peak, 1, 4);

        // Once the burst is over, the target answers everyone again.
        using var after = new HttpClient { BaseAddress = new Uri(_app.BaseUrl) };
        after.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        Assert.Equal(HttpStatusCode.OK, (await after.GetAsync($"/api/v1/targets/{_fractal.TargetId}/fractal/users", ct)).StatusCode);
    }

    private async Task<string> TokenAsync()
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var user = (await scope.ServiceProvider.GetRequiredService<UserManager<AppUser>>().FindByEmailAsync("viewer@example.org"))!;
        var owner = new ClaimsPrincipal(new ClaimsIdentity([new(ClaimTypes.NameIdentifier, user.Id), new(ClaimTypes.Name, user.Email!), new(ClaimTypes.Role, Roles.Viewer)], "test"));
        var created = await scope.ServiceProvider.GetRequiredService<ApiTokenService>().CreateAsync(owner, "readers", Roles.Viewer, 1, TestContext.Current.CancellationToken);
        Assert.True(created.Succeeded);
        return created.Created!.Secret;
    }

    public async ValueTask DisposeAsync()
    {
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
