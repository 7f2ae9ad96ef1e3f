using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Issue 18: an Operator rehearses the fractal-server 2.16 → 2.17.0 upgrade on a copy (the CLI's `runs rehearse`
/// against a real dashboard, the Fractal double on the real sshd, a scratch database on the real PostgreSQL):
/// it passes and matches the plan's prediction, or fails the way production would, and production stays
/// byte-for-byte untouched (env file, installed package, every table) and the copy is removed either way.
/// </summary>
public sealed class RehearsingAFractalUpgradeTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private const string Runbook = "fractal-2.16-to-2.17.0";
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private FractalTarget _fractal = default!;
    private HttpClient _admin = default!;
    private string _operatorToken = "";

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
        await _app.CreateUserAsync(_admin, "olivia@example.org", "Operator");
        _operatorToken = await ApiTokens.CreateAsync(_app, "olivia@example.org", "rehearsal script", "Operator");
        _fractal = await FractalTarget.CreateAsync(_app, _admin, ssh, postgres);
        await _fractal.PrepareForUpgradeAsync(ssh);
        // The scratch database is made on the same server: Fractal's role may create databases here.
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"ALTER ROLE \"{new NpgsqlConnectionStringBuilder(_fractal.DatabaseConnection).Username}\" CREATEDB", conn);
        await cmd.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task Rehearsal_PassesAndMatchesThePrediction_AndLeavesProductionUntouched()
    {
        var before = await ProductionAsync();

        var cli = await CliAsync(["runs", "rehearse", "--target", _fractal.TargetId.ToString(CultureInfo.InvariantCulture), "--runbook", Runbook, "--wait"]);
        Assert.True(cli.ExitCode == 0, cli.Combined);
        Assert.Contains("END - all ok.", cli.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("[compare] 11 as predicted, 0 difference(s)", cli.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("[compare] one resource \"Resource Name\" of type slurm_sudo, as predicted", cli.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain(FractalTarget.DbPassword, cli.Combined, StringComparison.Ordinal);

        using var api = ApiTokens.Client(_app.BaseUrl, _operatorToken);
        var runs = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={_fractal.TargetId}", TestContext.Current.CancellationToken);
        var rehearsal = runs.EnumerateArray().Single();
        Assert.Equal("rehearsal", rehearsal.GetProperty("kind").GetString());
        Assert.Equal(Runbook + "+rehearsal", rehearsal.GetProperty("runbookId").GetString());
        var id = rehearsal.GetProperty("id").GetInt32();
        var run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{id}", TestContext.Current.CancellationToken);
        Assert.Equal("Succeeded", run.GetProperty("state").GetString());
        var phases = run.GetProperty("phases").EnumerateArray().Select(p => (Key: p.GetProperty("key").GetString(), State: p.GetProperty("state").GetString())).ToList();
        Assert.Equal(["rehearsal-dump", "rehearsal-restore", "rehearsal-setup", "pip-install", "set-db", "update-db-data", "rehearsal-compare", "rehearsal-cleanup"], phases.Select(p => p.Key));
        Assert.All(phases, p => Assert.Equal("Succeeded", p.State));
        // The figures scripts/bench-rehearsal.sh reports, for this run on the double's database (in the test output).
        var seconds = run.GetProperty("phases").EnumerateArray().ToDictionary(p => p.GetProperty("key").GetString()!,
            p => (p.GetProperty("endedAt").GetDateTimeOffset() - p.GetProperty("startedAt").GetDateTimeOffset()).TotalSeconds);
        var inner = seconds.Where(p => !p.Key.StartsWith("rehearsal-", StringComparison.Ordinal)).Sum(p => p.Value);
        var overhead = seconds.Where(p => p.Key.StartsWith("rehearsal-", StringComparison.Ordinal) && p.Key != "rehearsal-compare").Sum(p => p.Value);
        var each = string.Join(' ', seconds.Select(p => p.Key + "=" + p.Value.ToString("0.00", CultureInfo.InvariantCulture)));
        TestContext.Current.TestOutputHelper?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"rehearsed phases {inner:0.00} s; overhead (dump+restore+setup+cleanup) {overhead:0.00} s; {each}"));

        await AssertUntouchedAndCleanedAsync(before, id);
        Assert.Contains(await _app.AuditEventsAsync(), e => e.Action == "run.rehearse" && e.Subject == $"run {id}" && e.Actor.Contains("olivia", StringComparison.Ordinal));

        // The real run's plan shows the rehearsal and counts its measured durations in the estimate.
        var plan = await api.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{_fractal.TargetId}/plan?runbook={Runbook}", TestContext.Current.CancellationToken);
        var latest = plan.GetProperty("latestRehearsal");
        Assert.Equal(id, latest.GetProperty("run").GetInt32());
        Assert.True(latest.GetProperty("passed").GetBoolean());
        Assert.Contains("-rehearsal", latest.GetProperty("dump").GetString(), StringComparison.Ordinal);
        var measured = latest.GetProperty("phases").EnumerateArray().Where(p => p.GetProperty("key").GetString() is "pip-install" or "set-db" or "update-db-data")
            .Sum(p => p.GetProperty("seconds").GetDouble());
        Assert.Equal(measured, plan.GetProperty("expectedSeconds").GetDouble(), 3);
    }

    [Fact]
    public async Task Rehearsal_OfAPlannedRun_FailsOnABlockerPlantedAfterThePlan_AndProductionStaysUntouched()
    {
        // The real run is planned while every user can be migrated; then someone clears a migrated user's project_dir.
        var planned = await _app.AsAsync<RunService, RunResult>(UpgradeConsoleApplicationFactory.AdminEmail,
            (runs, actor) => runs.PlanAsync(_fractal.TargetId, Runbook, null, null, new Dictionary<string, string>(), actor, CancellationToken.None));
        Assert.True(planned.Succeeded, planned.Error);
        await _fractal.ExecuteAsync("UPDATE user_settings SET project_dir = NULL WHERE id = (SELECT user_settings_id FROM user_oauth WHERE is_active AND is_verified ORDER BY id LIMIT 1)");
        var before = await ProductionAsync();

        var cli = await CliAsync(["runs", "rehearse", "--target", _fractal.TargetId.ToString(CultureInfo.InvariantCulture), "--runbook", Runbook, "--wait"]);
        Assert.True(cli.ExitCode == 1, cli.Combined);
        Assert.Contains("is active and verified but their user settings have project_dir=None.", cli.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("The rehearsal failed", cli.StandardError, StringComparison.Ordinal);
        Assert.Contains("Production was not touched", cli.StandardError, StringComparison.Ordinal);

        using var api = ApiTokens.Client(_app.BaseUrl, _operatorToken);
        var rehearsal = (await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={_fractal.TargetId}", TestContext.Current.CancellationToken))
            .EnumerateArray().Single(r => r.GetProperty("kind").GetString() == "rehearsal");
        var id = rehearsal.GetProperty("id").GetInt32();
        var run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{id}", TestContext.Current.CancellationToken);
        Assert.Equal("Failed", run.GetProperty("state").GetString());
        var states = run.GetProperty("phases").EnumerateArray().ToDictionary(p => p.GetProperty("key").GetString()!, p => p.GetProperty("state").GetString());
        Assert.Equal("Failed", states["update-db-data"]);
        Assert.Equal("Skipped", states["rehearsal-compare"]);
        Assert.Equal("Succeeded", states["rehearsal-cleanup"]);
        // It compared with the planned run's own plan, made before the change.
        Assert.Contains($"\"plannedRun\":{planned.RunId}", (await _app.AuditEventsAsync()).Single(e => e.Action == "run.rehearse").Details, StringComparison.Ordinal);

        await AssertUntouchedAndCleanedAsync(before, id);

        // A rehearsal is not resumed: its copy is gone.
        using var retry = await api.PostAsJsonAsync($"/api/v1/runs/{id}/retry", new { confirm = true }, TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.Conflict, retry.StatusCode);
        // The planned run still waits, untouched.
        var real = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{planned.RunId}", TestContext.Current.CancellationToken);
        Assert.Equal("Planned", real.GetProperty("state").GetString());
    }

    [Fact]
    public async Task Rehearse_FromTheCli_RefusesAnUnknownRunbook_WithExitCode2()
    {
        var cli = await CliAsync(["runs", "rehearse", "--target", _fractal.TargetId.ToString(CultureInfo.InvariantCulture), "--runbook", "no-such-runbook", "--wait"]);
        Assert.True(cli.ExitCode == 2, cli.Combined);
        Assert.Contains("fractal-2.16-to-2.17.0", cli.StandardError, StringComparison.Ordinal);
        var usage = await CliAsync(["runs", "rehearse", "--runbook", Runbook]);
        Assert.True(usage.ExitCode == 2, usage.Combined);
    }

    /// <summary>What production is: the env file's bytes, the installed version, the service, and a checksum of every table.</summary>
    private async Task<(string Env, string Version, string Active, string Tables)> ProductionAsync()
    {
        var workdir = await _fractal.Host.AbsoluteDirectoryAsync();
        var env = (await ssh.RunAsync($"sha256sum {workdir}/.fractal_server.env {workdir}/.fractal_server.env.old 2>&1; ls -a {workdir}")).StandardOutput;
        var version = (await ssh.RunAsync($"{workdir}/venv/bin/python -m pip show fractal-server | sed -n 's/^Version: //p'")).StandardOutput.Trim();
        var active = (await ssh.RunAsync($"{workdir}/service.sh is-active")).StandardOutput.Trim();
        return (env, version, active, await TableChecksums.EveryTableAsync(_fractal.DatabaseConnection));
    }

    private async Task AssertUntouchedAndCleanedAsync((string Env, string Version, string Active, string Tables) before, int rehearsalId)
    {
        var after = await ProductionAsync();
        Assert.Equal(before.Env, after.Env);
        Assert.Equal("2.16.6", after.Version);
        Assert.Equal(before.Version, after.Version);
        Assert.Equal("active", after.Active);
        Assert.Equal(before.Tables, after.Tables);
        Assert.Equal("981d588fe248", await _fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));

        // The copy is gone: no scratch database, no scratch directory, no rehearsal dump.
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync();
        // Only this target's: other tests rehearse on the same server meanwhile.
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_database WHERE starts_with(datname, @db || '_rehearsal_')", conn);
        cmd.Parameters.AddWithValue("db", new NpgsqlConnectionStringBuilder(_fractal.DatabaseConnection).Database!);
        Assert.Equal(0L, (long)(await cmd.ExecuteScalarAsync())!);
        using var api = ApiTokens.Client(_app.BaseUrl, _operatorToken);
        var log = await api.GetStringAsync($"/api/v1/runs/{rehearsalId}/log");
        Assert.NotNull(RehearsalCopy.ScratchDirectory(log));
        Assert.Equal("0", await RehearsalCopy.LeftAsync(ssh, _fractal, rehearsalId, log));
    }

    private Task<ProcessRunner.Result> CliAsync(string[] args) =>
        ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args],
            environment: new Dictionary<string, string?>
            {
                ["UPGRADECONSOLE_URL"] = _app.BaseUrl,
                ["UPGRADECONSOLE_TOKEN"] = _operatorToken,
                ["DOTNET_ENVIRONMENT"] = "Production",
            },
            workingDirectory: AppContext.BaseDirectory, timeout: TimeSpan.FromMinutes(8), check: false);

    public async ValueTask DisposeAsync()
    {
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
