using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Issue 18: a rehearsal and a real run never change one server at once. A real run's start is refused (409, saying
/// which rehearsal) while a rehearsal of its target runs, and accepted once it has ended; a rehearsal is refused while
/// a real run of the target is in progress. Both through the REST API an Operator's script uses, against the Fractal
/// double on the real sshd and PostgreSQL.
/// </summary>
public sealed class RehearsalAndRealRunOnOneTargetTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private const string Runbook = "fractal-2.16-to-2.17.0";
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private FractalTarget _fractal = default!;
    private string _token = "";

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        var admin = await _app.CreateFirstAdminAsync();
        await _app.CreateUserAsync(admin, "olivia@example.org", "Operator");
        _token = await ApiTokens.CreateAsync(_app, "olivia@example.org", "rehearsal script", "Operator");
        _fractal = await FractalTarget.CreateAsync(_app, admin, ssh, postgres);
        await _fractal.PrepareForUpgradeAsync(ssh);
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"ALTER ROLE \"{new NpgsqlConnectionStringBuilder(_fractal.DatabaseConnection).Username}\" CREATEDB", conn);
        await cmd.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task RealRunStart_WhileARehearsalRuns_IsRefusedWithTheRehearsal_AndAcceptedOnceItEnded()
    {
        // The rehearsal's scratch venv waits for a file on the target: it stays running until the test lets it go.
        var release = await HoldScratchVenvAsync(_app, _fractal, ssh);
        using var api = ApiTokens.Client(_app.BaseUrl, _token);
        var planned = await PlanAsync(api);
        using var started = await api.PostAsJsonAsync($"/api/v1/targets/{_fractal.TargetId}/rehearsals", new { runbook = Runbook }, TestContext.Current.CancellationToken);
        Assert.True(started.StatusCode == HttpStatusCode.Created, await started.Content.ReadAsStringAsync());
        var rehearsal = (await started.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken)).GetProperty("id").GetInt32();
        await Eventually.TrueAsync(async () => await PhaseStateAsync(api, rehearsal, "rehearsal-setup") == "Running", TimeSpan.FromMinutes(3),
            () => $"rehearsal {rehearsal} did not reach its setup");

        using var refused = await api.PostAsync($"/api/v1/runs/{planned}/start", null, TestContext.Current.CancellationToken);
        var body = await refused.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(refused.StatusCode == HttpStatusCode.Conflict, body);
        Assert.Contains($"rehearsal {rehearsal} is running on this target", body, StringComparison.Ordinal);
        Assert.Equal("Planned", await StateAsync(api, planned));
        Assert.DoesNotContain(await _app.AuditEventsAsync(), e => e.Action == "run.start");

        Assert.Equal(0, (await ssh.RunAsync($"touch {release}")).ExitCode);
        await Eventually.TrueAsync(async () => await StateAsync(api, rehearsal) is not "Running", TimeSpan.FromMinutes(5));
        Assert.Equal("Succeeded", await StateAsync(api, rehearsal));

        using var accepted = await api.PostAsync($"/api/v1/runs/{planned}/start", null, TestContext.Current.CancellationToken);
        Assert.True(accepted.StatusCode == HttpStatusCode.OK, await accepted.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        await Eventually.TrueAsync(async () => await StateAsync(api, planned) is not ("Running" or "Planned"), TimeSpan.FromMinutes(6));
        // Every automatic phase done; the runbook's manual checks wait for people.
        Assert.Equal("WaitingForChecklist", await StateAsync(api, planned));
    }

    [Fact]
    public async Task Rehearsal_WhileARealRunIsInProgress_IsRefused_AlsoWhileItWaitsForADecision()
    {
        // The real run's pip install prints a line a second: it is in progress while the rehearsal is asked for.
        var planned = await SlowPipRun.PlanAsync(_app, _fractal, ssh, lines: 600);
        using var api = ApiTokens.Client(_app.BaseUrl, _token);
        using var start = await api.PostAsync($"/api/v1/runs/{planned}/start", null, TestContext.Current.CancellationToken);
        Assert.True(start.StatusCode == HttpStatusCode.OK, await start.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        await Eventually.TrueAsync(async () => await PhaseStateAsync(api, planned, "pip-install") == "Running", TimeSpan.FromMinutes(3));

        var refused = await RehearseAsync(api);
        Assert.True(refused.Status == HttpStatusCode.Conflict, refused.Body);
        Assert.Contains($"Run {planned} is Running on this target", refused.Body, StringComparison.Ordinal);

        // Stopped by a person, the run is Failed and still holds the target: nothing may rehearse on it until it is decided.
        using var cancel = await api.PostAsJsonAsync($"/api/v1/runs/{planned}/cancel", new { reason = "test" }, TestContext.Current.CancellationToken);
        Assert.True(cancel.IsSuccessStatusCode, await cancel.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        await Eventually.TrueAsync(async () => await StateAsync(api, planned) == "Failed", TimeSpan.FromMinutes(2));
        var stillRefused = await RehearseAsync(api);
        Assert.True(stillRefused.Status == HttpStatusCode.Conflict, stillRefused.Body);
        Assert.Contains($"Run {planned} is Failed on this target", stillRefused.Body, StringComparison.Ordinal);

        Assert.DoesNotContain(await _app.AuditEventsAsync(), e => e.Action == "run.rehearse");
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        Assert.Equal(1, await db.Runs.CountAsync(r => r.TargetId == _fractal.TargetId, TestContext.Current.CancellationToken));
    }

    /// <summary>A Python in front of the target's whose <c>-m venv</c> waits for a file; returns the file's path.</summary>
    internal static async Task<string> HoldScratchVenvAsync(UpgradeConsoleApplicationFactory app, FractalTarget fractal, SshServer ssh)
    {
        var home = await fractal.Host.AbsoluteDirectoryAsync();
        var release = $"{home}/release-venv";
        await fractal.Host.WriteFileAsync("venv/bin/python-held", $$"""
            #!/bin/bash
            if [ "${1:-}" = "-m" ] && [ "${2:-}" = "venv" ]; then
              echo "held until {{release}} exists"
              while [ ! -e {{release}} ]; do sleep 0.2; done
            fi
            exec "$(dirname "$0")/python" "$@"
            """);
        Assert.Equal(0, (await ssh.RunAsync($"chmod 755 {home}/venv/bin/python-held")).ExitCode);
        await using var scope = app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var target = await db.Targets.SingleAsync(t => t.Id == fractal.TargetId);
        target.PythonPath = $"{home}/venv/bin/python-held";
        await db.SaveChangesAsync();
        return release;
    }

    private async Task<int> PlanAsync(HttpClient api)
    {
        using var response = await api.PostAsJsonAsync($"/api/v1/targets/{_fractal.TargetId}/runs", new { runbook = Runbook }, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.Created, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("run").GetProperty("id").GetInt32();
    }

    private async Task<(HttpStatusCode Status, string Body)> RehearseAsync(HttpClient api)
    {
        using var response = await api.PostAsJsonAsync($"/api/v1/targets/{_fractal.TargetId}/rehearsals", new { runbook = Runbook }, TestContext.Current.CancellationToken);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }

    private static async Task<string?> StateAsync(HttpClient api, int runId) =>
        (await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}")).GetProperty("state").GetString();

    private static async Task<string?> PhaseStateAsync(HttpClient api, int runId, string key) =>
        (await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}")).GetProperty("phases").EnumerateArray()
            .Where(p => p.GetProperty("key").GetString() == key).Select(p => p.GetProperty("state").GetString()).FirstOrDefault();

    public async ValueTask DisposeAsync()
    {
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
