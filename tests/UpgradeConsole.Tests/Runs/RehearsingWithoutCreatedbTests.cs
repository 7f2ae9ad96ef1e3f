using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Issue 18: the Fractal role may not create databases (no CREATEDB, as the fixture makes it), so the rehearsal restores
/// into a throwaway PostgreSQL cluster of the server's major version: the real initdb/pg_ctl of the postgresql package
/// on the target, on a free port of 127.0.0.1 and a socket in the scratch directory. It passes and matches the prediction,
/// or fails on a blocker planted after the plan; either way the cleanup stops the cluster and removes it, and no scratch
/// database appears on the production server.
/// </summary>
public sealed class RehearsingWithoutCreatedbTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
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
        Assert.False(await _fractal.ScalarAsync<bool>("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"));
    }

    [Fact]
    public async Task Rehearsal_WithoutCreatedb_RunsInAThrowawayCluster_MatchesThePrediction_AndRemovesIt()
    {
        using var api = ApiTokens.Client(_app.BaseUrl, _token);
        var (id, run, log) = await RehearseAsync(api);
        Assert.True(run.GetProperty("state").GetString() == "Succeeded", $"{run}\n{log}");
        Assert.Contains("may not create databases (CREATEDB): a throwaway PostgreSQL cluster", log, StringComparison.Ordinal);
        var major = await ServerMajorAsync();
        Assert.Contains($"initdb of a PostgreSQL {major} cluster", log, StringComparison.Ordinal);
        Assert.Contains("the throwaway cluster listens on 127.0.0.1:", log, StringComparison.Ordinal);
        Assert.Contains("[rehearsal] against the throwaway cluster on 127.0.0.1:", log, StringComparison.Ordinal);
        Assert.Contains("[compare] 11 as predicted, 0 difference(s)", log, StringComparison.Ordinal);
        Assert.Contains("stopped the throwaway cluster", log, StringComparison.Ordinal);
        var restore = run.GetProperty("phases").EnumerateArray().Single(p => p.GetProperty("key").GetString() == "rehearsal-restore");
        Assert.Contains("in the throwaway cluster on 127.0.0.1:", restore.GetProperty("message").GetString(), StringComparison.Ordinal);
        await AssertGoneAsync(id, log);
    }

    [Fact]
    public async Task Rehearsal_WithoutCreatedb_FailingOnAPlantedBlocker_StillStopsAndRemovesTheCluster()
    {
        var planned = await _app.AsAsync<RunService, RunResult>(UpgradeConsoleApplicationFactory.AdminEmail,
            (runs, actor) => runs.PlanAsync(_fractal.TargetId, Runbook, null, null, new Dictionary<string, string>(), actor, CancellationToken.None));
        Assert.True(planned.Succeeded, planned.Error);
        await _fractal.ExecuteAsync("UPDATE user_settings SET project_dir = NULL WHERE id = (SELECT user_settings_id FROM user_oauth WHERE is_active AND is_verified ORDER BY id LIMIT 1)");
        var usersBefore = await _fractal.DumpUserTablesAsync();

        using var api = ApiTokens.Client(_app.BaseUrl, _token);
        var (id, run, log) = await RehearseAsync(api);
        Assert.True(run.GetProperty("state").GetString() == "Failed", $"{run}\n{log}");
        var states = run.GetProperty("phases").EnumerateArray().ToDictionary(p => p.GetProperty("key").GetString()!, p => p.GetProperty("state").GetString());
        Assert.Equal("Succeeded", states["rehearsal-restore"]);
        Assert.Equal("Failed", states["update-db-data"]);
        Assert.Equal("Succeeded", states["rehearsal-cleanup"]);
        Assert.Contains("is active and verified but their user settings have project_dir=None.", log, StringComparison.Ordinal);
        Assert.Contains("stopped the throwaway cluster", log, StringComparison.Ordinal);
        await AssertGoneAsync(id, log);
        Assert.Equal(usersBefore, await _fractal.DumpUserTablesAsync());
        Assert.Equal("981d588fe248", await _fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));
    }

    private async Task<(int Id, JsonElement Run, string Log)> RehearseAsync(HttpClient api)
    {
        using var started = await api.PostAsJsonAsync($"/api/v1/targets/{_fractal.TargetId}/rehearsals", new { runbook = Runbook }, TestContext.Current.CancellationToken);
        Assert.True(started.StatusCode == HttpStatusCode.Created, await started.Content.ReadAsStringAsync());
        var id = (await started.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken)).GetProperty("id").GetInt32();
        JsonElement run = default;
        await Eventually.TrueAsync(async () =>
        {
            run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{id}");
            return run.GetProperty("state").GetString() is not "Running";
        }, TimeSpan.FromMinutes(6), () => run.ToString());
        return (id, run, await api.GetStringAsync($"/api/v1/runs/{id}/log"));
    }

    /// <summary>No postgres of the rehearsal's cluster runs, its scratch directory is gone, and no scratch database was made on the production server.</summary>
    private async Task AssertGoneAsync(int id, string log)
    {
        // This rehearsal's own scratch directory (another test's run {id} may be rehearsing beside it). The pattern cannot
        // match its own command line: there "[/]" is followed by "pgcluster", not a slash.
        var scratch = RehearsalCopy.ScratchDirectory(log);
        Assert.NotNull(scratch);
        var processes = await ssh.RunAsync($"pgrep -u {ssh.User} -f -- '{Regex.Escape(scratch)}[/]pgcluster/data' | wc -l", check: false);
        Assert.Equal("0", processes.StandardOutput.Trim());
        Assert.Equal("0", await RehearsalCopy.LeftAsync(ssh, _fractal, id, log));
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_database WHERE starts_with(datname, @db || '_rehearsal_')", conn);
        cmd.Parameters.AddWithValue("db", new NpgsqlConnectionStringBuilder(_fractal.DatabaseConnection).Database!);
        Assert.Equal(0L, (long)(await cmd.ExecuteScalarAsync())!);
    }

    private async Task<int> ServerMajorAsync()
    {
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT current_setting('server_version_num')::int / 10000", conn);
        return (int)(await cmd.ExecuteScalarAsync())!;
    }

    public async ValueTask DisposeAsync()
    {
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
