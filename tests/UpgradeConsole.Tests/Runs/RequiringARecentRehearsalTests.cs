using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Issue 18: a target may ask for a passing rehearsal newer than N days before a run (off by default). Set through
/// the API (PATCH), it is a preflight check that fails while the target has none, so the run cannot be planned; after a
/// real rehearsal passes (the Fractal double on the real sshd and PostgreSQL), the check passes and the run is planned.
/// </summary>
public sealed class RequiringARecentRehearsalTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private const string Runbook = "fractal-2.16-to-2.17.0";
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private FractalTarget _fractal = default!;
    private string _token = "";

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        var admin = await _app.CreateFirstAdminAsync();
        _token = await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "settings script", "Admin");
        _fractal = await FractalTarget.CreateAsync(_app, admin, ssh, postgres);
        await _fractal.PrepareForUpgradeAsync(ssh);
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"ALTER ROLE \"{new NpgsqlConnectionStringBuilder(_fractal.DatabaseConnection).Username}\" CREATEDB", conn);
        await cmd.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task RecentRehearsalRequired_FailsThePreflightUntilOnePasses_ThenTheRunIsPlanned()
    {
        using var api = ApiTokens.Client(_app.BaseUrl, _token);
        var ct = TestContext.Current.CancellationToken;

        // Off by default: the check passes and says the target does not ask.
        var off = await CheckAsync(api);
        Assert.Equal("Pass", off.GetProperty("status").GetString());
        Assert.Contains("does not ask for one", off.GetProperty("explanation").GetString(), StringComparison.Ordinal);

        var target = await api.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{_fractal.TargetId}", ct);
        Assert.Equal(JsonValueKind.Null, target.GetProperty("requirePassingRehearsalWithinDays").ValueKind);
        using (var patch = await api.PatchAsJsonAsync($"/api/v1/targets/{_fractal.TargetId}", new { version = target.GetProperty("version").GetString(), requirePassingRehearsalWithinDays = 7 }, ct))
        {
            Assert.True(patch.IsSuccessStatusCode, await patch.Content.ReadAsStringAsync(ct));
            Assert.Equal(7, (await patch.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("requirePassingRehearsalWithinDays").GetInt32());
        }

        var none = await CheckAsync(api);
        Assert.Equal("Fail", none.GetProperty("status").GetString());
        Assert.Contains("newer than 7 days; it has none", none.GetProperty("explanation").GetString(), StringComparison.Ordinal);
        using (var refused = await api.PostAsJsonAsync($"/api/v1/targets/{_fractal.TargetId}/runs", new { runbook = Runbook }, ct))
        {
            var body = await refused.Content.ReadAsStringAsync(ct);
            Assert.True(refused.StatusCode == HttpStatusCode.Conflict, body);
            Assert.Contains("A recent passing rehearsal", body, StringComparison.Ordinal);
        }

        using (var started = await api.PostAsJsonAsync($"/api/v1/targets/{_fractal.TargetId}/rehearsals", new { runbook = Runbook }, ct))
        {
            Assert.True(started.StatusCode == HttpStatusCode.Created, await started.Content.ReadAsStringAsync(ct));
            var id = (await started.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("id").GetInt32();
            JsonElement run = default;
            await Eventually.TrueAsync(async () =>
            {
                run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{id}");
                return run.GetProperty("state").GetString() is not "Running";
            }, TimeSpan.FromMinutes(6), () => run.ToString());
            Assert.True(run.GetProperty("state").GetString() == "Succeeded", run.ToString());

            var passed = await CheckAsync(api);
            Assert.True(passed.GetProperty("status").GetString() == "Pass", passed.ToString());
            Assert.Contains($"rehearsal {id} passed", passed.GetProperty("explanation").GetString(), StringComparison.Ordinal);
        }

        using var planned = await api.PostAsJsonAsync($"/api/v1/targets/{_fractal.TargetId}/runs", new { runbook = Runbook }, ct);
        Assert.True(planned.StatusCode == HttpStatusCode.Created, await planned.Content.ReadAsStringAsync(ct));
    }

    /// <summary>Runs the preflight through the API and returns the recent-rehearsal check.</summary>
    private async Task<JsonElement> CheckAsync(HttpClient api)
    {
        using var response = await api.PostAsync($"/api/v1/targets/{_fractal.TargetId}/preflight", null, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("id").GetString() == "rehearsal.recent").Clone();
    }

    public async ValueTask DisposeAsync()
    {
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
