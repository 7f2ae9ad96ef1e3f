using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
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

    /// <summary>
    /// The issue's own test: fifty concurrent Viewer reads while a run's <c>pip install</c> phase executes on the target.
    /// The phase is unaffected (pip runs once, every line of it stored once, the run goes on), the reads answer 200 or 503
    /// with a reason and never 500, and they share reads of the target instead of each opening its own.
    /// </summary>
    [Fact]
    public async Task FiftyViewerReads_WhileAPhaseExecutes_LeaveThePhaseAlone_AndShareTheirReads()
    {
        var ct = TestContext.Current.CancellationToken;
        await _fractal.PrepareForUpgradeAsync(ssh);
        var home = await _fractal.Host.AbsoluteDirectoryAsync();
        var release = $"{home}/release-pip";

        // pip goes through a Python that counts its calls, prints a line, and holds until the test lets it go.
        await _fractal.Host.WriteFileAsync("venv/bin/python-held", $$"""
            #!/bin/bash
            if [ "${1:-}" = "-m" ] && [ "${2:-}" = "pip" ] && [ "${3:-}" = "install" ]; then
              echo called >> {{home}}/pip-calls
              echo "held-pip started"
              for i in $(seq 1 600); do [ -e {{release}} ] && break; sleep 0.2; done
              echo "held-pip released"
            fi
            exec "$(dirname "$0")/python" "$@"
            """);
        Assert.Equal(0, (await ssh.RunAsync($"chmod 755 {home}/venv/bin/python-held")).ExitCode);
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<UpgradeConsole.Web.Persistence.AppDbContext>();
            var target = await db.Targets.SingleAsync(t => t.Id == _fractal.TargetId, ct);
            target.PythonPath = $"{home}/venv/bin/python-held";
            await db.SaveChangesAsync(ct);
        }

        using var admin = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "admin script", Roles.Admin));
        using var planned = await admin.PostAsJsonAsync($"/api/v1/targets/{_fractal.TargetId}/runs", new { runbook = "fractal-2.16-to-2.17.0" }, ct);
        var plannedBody = await planned.Content.ReadAsStringAsync(ct);
        Assert.True(planned.StatusCode == HttpStatusCode.Created, plannedBody);
        var runId = JsonDocument.Parse(plannedBody).RootElement.GetProperty("run").GetProperty("id").GetInt32();
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync($"/api/v1/runs/{runId}/start", null, ct)).StatusCode);
        await Eventually.TrueAsync(async () => (await admin.GetStringAsync($"/api/v1/runs/{runId}/log", ct)).Contains("held-pip started", StringComparison.Ordinal), TimeSpan.FromMinutes(4));

        var reads = _app.Services.GetRequiredService<TargetReads>();
        var before = reads.Performed;
        var token = await TokenAsync();
        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(async _ =>
        {
            using var client = new HttpClient { BaseAddress = new Uri(_app.BaseUrl), Timeout = TimeSpan.FromMinutes(5) };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await client.GetAsync($"/api/v1/targets/{_fractal.TargetId}/fractal/users", ct);
            return (response.StatusCode, RetryAfter: response.Headers.RetryAfter?.Delta, Body: await response.Content.ReadAsStringAsync(ct));
        }));
        var performed = reads.Performed - before;

        // The phase was executing all along: it has not gone past pip.
        var during = await admin.GetStringAsync($"/api/v1/runs/{runId}/log", ct);
        Assert.DoesNotContain("held-pip released", during, StringComparison.Ordinal);

        var unexpected = responses.Where(r => r.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable)).ToList();
        Assert.True(unexpected.Count == 0, string.Join("\n", unexpected.Select(r => $"{(int)r.StatusCode}: {r.Body}")));
        var answered = responses.Count(r => r.StatusCode == HttpStatusCode.OK);
        Assert.True(answered >= 1, "no read answered while the phase ran");
        Assert.All(responses.Where(r => r.StatusCode == HttpStatusCode.ServiceUnavailable), r =>
        {
            Assert.True(r.RetryAfter > TimeSpan.Zero, "a refusal without Retry-After");
            Assert.Contains("running an upgrade phase, which comes first", r.Body, StringComparison.Ordinal);
        });
        Assert.True(performed < answered, $"{performed} reads of the target for {answered} answers: the reads were not shared");

        // Let pip go: the phase finishes as if nobody had been reading.
        Assert.Equal(0, (await ssh.RunAsync($"touch {release}")).ExitCode);
        var state = "";
        await Eventually.TrueAsync(async () =>
        {
            state = (await admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}", ct)).GetProperty("state").GetString()!;
            return state is not ("Running" or "Planned");
        }, TimeSpan.FromMinutes(4));
        var log = await admin.GetStringAsync($"/api/v1/runs/{runId}/log", ct);
        Assert.True(state == "WaitingForChecklist", $"run is {state}\n{log}");
        Assert.Single(log.Split('\n'), l => l.Contains("held-pip released", StringComparison.Ordinal));
        Assert.Contains("Successfully installed fractal-server-2.17.0", log, StringComparison.Ordinal);
        Assert.Equal("called", (await ssh.RunAsync($"cat {home}/pip-calls")).StandardOutput.Trim());

        // What an operator's Prometheus sees of it: the phase's duration and the target's SSH connection.
        var metrics = await admin.GetStringAsync("/metrics", ct);
        Assert.Contains("upgradeconsole_phase_duration_seconds_count{runbook=\"fractal-2.16-to-2.17.0\",phase=\"pip-install\",outcome=\"Succeeded\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("upgradeconsole_ssh_connections_total{target=", metrics, StringComparison.Ordinal);
        Assert.Contains("upgradeconsole_runs{state=\"WaitingForChecklist\"} 1", metrics, StringComparison.Ordinal);
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
