using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// A run whose own preflight fails (a blocking user appeared after the plan): nobody takes it further
/// with "mark done" — not an Operator, not an Admin, not through the API nor the pages — and an
/// Operator cannot override; only an Admin's override of the named check, with a reason, lets the
/// preflight pass, and the run goes on from there.
/// </summary>
public sealed class PassingAFailedPreflightTests(Chromium chromium, SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private FractalTarget _fractal = default!;
    private HttpClient _admin = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
        _fractal = await FractalTarget.CreateAsync(_app, _admin, ssh, postgres);
        await _fractal.PrepareForUpgradeAsync(ssh);
    }

    [Fact]
    public async Task AFailedPreflightPhase_IsNeverMarkedDone_AndOnlyAnAdminsOverrideLetsItPass()
    {
        var ct = TestContext.Current.CancellationToken;
        var operatorPassword = await _app.CreateUserAsync(_admin, "operator@example.org", "Operator");
        using var adminApi = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "admin script", "Admin"));
        using var operatorApi = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, "operator@example.org", "operator script", "Operator"));

        // The preflight passes when the Operator plans and starts the run...
        using var preflight = await operatorApi.PostAsync($"/api/v1/targets/{_fractal.TargetId}/preflight", null, ct);
        var preflightBody = await preflight.Content.ReadAsStringAsync(ct);
        Assert.True(JsonDocument.Parse(preflightBody).RootElement.GetProperty("passed").GetBoolean(), preflightBody);
        using var planned = await operatorApi.PostAsJsonAsync($"/api/v1/targets/{_fractal.TargetId}/runs", new { runbook = "fractal-2.16-to-2.17.0" }, ct);
        var plannedBody = await planned.Content.ReadAsStringAsync(ct);
        Assert.True(planned.StatusCode == HttpStatusCode.Created, plannedBody);
        var runId = JsonDocument.Parse(plannedBody).RootElement.GetProperty("run").GetProperty("id").GetInt32();

        // ...but meanwhile alice, active and verified, loses her project_dir: the run's own preflight fails.
        await _fractal.ExecuteAsync("UPDATE user_settings SET project_dir = NULL WHERE id = (SELECT user_settings_id FROM user_oauth WHERE email = 'alice@example.org')");
        await ExpectOkAsync(await operatorApi.PostAsync($"/api/v1/runs/{runId}/start", null, ct));
        var run = await SettledAsync(runId, ct);
        Assert.Equal("Failed", run.GetProperty("state").GetString());
        Assert.Equal("Failed", PhaseState(run, "preflight"));
        Assert.Equal("Pending", PhaseState(run, "backup"));

        // Mark done is refused to both roles, through the API...
        foreach (var api in new[] { operatorApi, adminApi })
        {
            using var markDone = await api.PostAsJsonAsync($"/api/v1/runs/{runId}/mark-done", new { reason = "the preflight is too strict" }, ct);
            Assert.Equal(HttpStatusCode.Conflict, markDone.StatusCode);
            Assert.Contains("never marked done", await markDone.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
        }

        // ...an Operator may not override, and an Admin only a check that fails, each with a reason.
        using (var byOperator = await operatorApi.PostAsJsonAsync($"/api/v1/runs/{runId}/preflight-overrides", new { overrides = new Dictionary<string, string> { ["users.blocking"] = "I say so" } }, ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, byOperator.StatusCode);
            Assert.Contains("Only an Admin may override", await byOperator.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
        }

        using (var notFailing = await adminApi.PostAsJsonAsync($"/api/v1/runs/{runId}/preflight-overrides", new { overrides = new Dictionary<string, string> { ["backup.space"] = "plenty" } }, ct))
        {
            Assert.Equal(HttpStatusCode.Conflict, notFailing.StatusCode);
            Assert.Contains("does not fail in the latest preflight", await notFailing.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
        }

        using (var noReason = await adminApi.PostAsJsonAsync($"/api/v1/runs/{runId}/preflight-overrides", new { overrides = new Dictionary<string, string> { ["users.blocking"] = " " } }, ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, noReason.StatusCode);
        }

        // ...and through the page: the Operator's run page offers neither, and its service refuses both anyway.
        await using (var operatorBrowser = await chromium.NewSessionAsync(_app.BaseUrl))
        {
            await Accounts.SigningInTests.SignInAsync(operatorBrowser.Page, "operator@example.org", operatorPassword);
            await operatorBrowser.GotoInteractiveAsync($"/runs/{runId}");
            await Assertions.Expect(operatorBrowser.Page.GetByTestId("gate-explained")).ToBeVisibleAsync();
            await Assertions.Expect(operatorBrowser.Page.Locator("#action-mark-done")).ToHaveCountAsync(0);
            await Assertions.Expect(operatorBrowser.Page.GetByTestId("preflight-override")).ToHaveCountAsync(0);
        }

        var markDoneByOperator = await _app.AsAsync<RunService, RunResult>("operator@example.org", (runs, actor) => runs.MarkDoneAsync(runId, "the preflight is too strict", actor, ct));
        Assert.Contains("never marked done", markDoneByOperator.Error, StringComparison.Ordinal);
        var overrideByOperator = await _app.AsAsync<RunService, RunResult>("operator@example.org",
            (runs, actor) => runs.OverridePreflightAsync(runId, new Dictionary<string, string> { ["users.blocking"] = "I say so" }, actor, ct));
        Assert.Contains("Only an Admin may override", overrideByOperator.Error, StringComparison.Ordinal);

        // Nothing after the preflight ran: no backup, the schema untouched.
        run = await RunAsync(runId, ct);
        Assert.Equal("Failed", run.GetProperty("state").GetString());
        Assert.Equal("Pending", PhaseState(run, "backup"));
        Assert.Equal("981d588fe248", await _fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));

        // An Admin overrides the named check on the run page, with a reason; the preflight runs again and lets it through.
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await Accounts.SigningInTests.SignInAsync(page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await browser.GotoInteractiveAsync($"/runs/{runId}");
        await Assertions.Expect(page.Locator("#action-mark-done")).ToHaveCountAsync(0);
        await page.Locator("[id='override-users.blocking']").FillAsync("alice's directory is restored before the data migration");
        await browser.ScreenshotAsync("run-preflight-override");
        await page.ClickAsync("#action-override-preflight");
        // The click returns at once (the circuit acts, no page load): what the Admin waits for is the second preflight.
        await Assertions.Expect(page.Locator("[data-testid=run-phase][data-key=preflight]")).Not.ToHaveAttributeAsync("data-state", "Failed", new() { Timeout = 60_000 });
        await Eventually.TrueAsync(async () =>
        {
            run = await RunAsync(runId, ct);
            return Phase(run, "preflight").GetProperty("attempt").GetInt32() >= 2;
        }, TimeSpan.FromMinutes(1), () => $"run {runId}: the preflight did not run again: {run}");

        // alice still blocks update-db-data: the run goes past the preflight and stops there, as the override allowed.
        run = await SettledAsync(runId, ct);
        Assert.Equal("Succeeded", PhaseState(run, "preflight"));
        Assert.Equal(2, Phase(run, "preflight").GetProperty("attempt").GetInt32());
        Assert.Equal("Succeeded", PhaseState(run, "backup"));
        var log = await (await adminApi.GetAsync($"/api/v1/runs/{runId}/log", ct)).Content.ReadAsStringAsync(ct);
        Assert.Contains("FAIL (overridden) Every active, verified user has what the backend needs", log, StringComparison.Ordinal);
        Assert.Contains("alice's directory is restored before the data migration (by admin@example.org)", log, StringComparison.Ordinal);

        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Action == "run.preflight-override" && e.Actor == UpgradeConsoleApplicationFactory.AdminEmail
            && e.Details.Contains("users.blocking: alice's directory is restored before the data migration", StringComparison.Ordinal));
        Assert.DoesNotContain(events, e => e.Action == "run.mark-done");
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    private static async Task ExpectOkAsync(HttpResponseMessage response)
    {
        using (response)
        {
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        }
    }

    private async Task<JsonElement> RunAsync(int runId, CancellationToken ct) =>
        JsonDocument.Parse(await (await ApiClientAsync()).GetStringAsync($"/api/v1/runs/{runId}", ct)).RootElement;

    private HttpClient? _reader;

    private async Task<HttpClient> ApiClientAsync() =>
        _reader ??= ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "test reader", "Viewer"));

    /// <summary>Polls the run until it stops moving (bounded by the run's own phases; fails with its log otherwise).</summary>
    private async Task<JsonElement> SettledAsync(int runId, CancellationToken ct)
    {
        var run = default(JsonElement);
        await Eventually.TrueAsync(async () =>
        {
            run = await RunAsync(runId, ct);
            return run.GetProperty("state").GetString() is not ("Planned" or "Running" or "RollingBack");
        }, TimeSpan.FromMinutes(4), () => $"run {runId} still moving: {run}");
        return run;
    }

    private static JsonElement Phase(JsonElement run, string key) =>
        run.GetProperty("phases").EnumerateArray().First(p => p.GetProperty("key").GetString() == key && !p.GetProperty("isRollback").GetBoolean());

    private static string? PhaseState(JsonElement run, string key) => Phase(run, key).GetProperty("state").GetString();

    public async ValueTask DisposeAsync()
    {
        _reader?.Dispose();
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
