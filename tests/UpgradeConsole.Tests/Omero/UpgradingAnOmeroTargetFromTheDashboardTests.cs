using Microsoft.Extensions.DependencyInjection;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Omero;

/// <summary>
/// OMERO.server as a product of the dashboard, end to end over real sshd, real PostgreSQL and the OMERO
/// host double: an omero target's preflight (precheck SQL included) and plan through the API, a whole
/// 5.3.5 → 5.6.3 upgrade by the CLI's <c>runs start --wait</c> through the Hangfire phase jobs, and a
/// failure after the point of no return rolled back by the driver to the same database version and row counts.
/// </summary>
public sealed partial class UpgradingAnOmeroTargetFromTheDashboardTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private readonly FileServer _releases = new();
    private HttpClient _adminSession = default!;
    private string _adminToken = "";

    public async ValueTask InitializeAsync()
    {
        // Where this facility's hosts download OMERO releases from (a release not on the host is fetched by the run).
        _app.WithSetting("UpgradeConsole:Omero:ReleaseUrl", _releases.Url("/omero/{version}/OMERO.server-{version}-ice36.zip"));
        _app.ServeOverKestrel();
        _adminSession = await _app.CreateFirstAdminAsync();
        _adminToken = (await ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), "tokens", "create", "--user", UpgradeConsoleApplicationFactory.AdminEmail, "--name", "ci admin", "--role", "Admin"],
            environment: new Dictionary<string, string?>
            {
                ["UpgradeConsole__DataDirectory"] = _app.DataDirectory,
                ["DOTNET_ENVIRONMENT"] = "Production",
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
            },
            workingDirectory: AppContext.BaseDirectory)).StandardOutput.Trim();
    }

    public async ValueTask DisposeAsync()
    {
        _adminSession.Dispose();
        await _app.DisposeAsync();
        _releases.Dispose();
    }

    [Fact]
    public async Task AnOmeroTarget_PlansAndUpgrades_ThroughTheCli_ToSuccess()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var omero = await OmeroTarget.CreateAsync(_app, ssh, postgres);
        var target = omero.TargetId.ToString(CultureInfo.InvariantCulture);
        using var api = ApiTokens.Client(_app.BaseUrl, _adminToken);

        // The target is an omero target, and only OMERO's runbook plans on it.
        Assert.Equal("omero", (await api.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{target}", ct)).GetProperty("product").GetString());
        using (var wrong = await api.GetAsync($"/api/v1/targets/{target}/plan?runbook=fractal-release&to=2.17.1", ct))
        {
            Assert.Equal(HttpStatusCode.Conflict, wrong.StatusCode);
            Assert.Contains("omero-upgrade", await wrong.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
        }

        // "Look at the server" reads OMERO, not a fractal-server: its version, database and what the upgrade needs, no password.
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var discovered = await scope.ServiceProvider.GetRequiredService<UpgradeConsole.Web.Targets.TargetService>().DiscoverAsync(omero.TargetId, await _app.PrincipalOfAsync(), ct);
            Assert.True(discovered.Error is null, discovered.Error);
            Assert.Null(discovered.Result);
            Assert.Equal(OmeroHost.OldVersion, discovered.Installed);
            var facts = discovered.Facts!.ToDictionary(f => f.Label, f => f.Value);
            Assert.Equal(OmeroHost.OldVersion, facts["OMERO.server"]);
            Assert.Contains("schema OMERO5.3__0", facts["Database"], StringComparison.Ordinal);
            Assert.Contains("password set, never shown", facts["Database"], StringComparison.Ordinal);
            Assert.Equal("running (omero admin status)", facts["Server status"]);
            Assert.DoesNotContain(discovered.Facts!, f => f.Value.Contains(OmeroHost.DbPassword, StringComparison.Ordinal));
        }

        Assert.Equal(OmeroHost.OldVersion, (await api.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{target}", ct)).GetProperty("installedVersion").GetString());

        // Preflight: OMERO's checks, the precheck SQL read from the release zip included; every one passes.
        var preflight = await CliAsync(["preflight", "run", "--target", target, "--json"]);
        Assert.True(preflight.ExitCode == 0, preflight.Combined);
        var checks = JsonDocument.Parse(preflight.StandardOutput).RootElement.GetProperty("checks").EnumerateArray()
            .ToDictionary(c => c.GetProperty("id").GetString()!, c => (Status: c.GetProperty("status").GetString(), Text: c.GetProperty("explanation").GetString()));
        foreach (var id in new[] { "omero.discovery", "omero.path", "omero.postgres", "omero.encoding", "omero.precheck", "omero.backup-room", "omero.release", "omero.status" })
        {
            Assert.True(checks.TryGetValue(id, out var check) && check.Status == "Pass", $"{id}: {check.Status} {check.Text}\n{preflight.StandardOutput}");
        }

        Assert.Contains("YOUR DATABASE IS READY FOR UPGRADE TO VERSION OMERO5.4__0", checks["omero.precheck"].Text, StringComparison.Ordinal);
        Assert.Contains("meets OMERO5.4__0's prerequisite of 9.3.0", checks["omero.postgres"].Text, StringComparison.Ordinal);

        // The plan: the guide's phases with their commands, the point of no return at the upgrade SQL, no password anywhere.
        var planText = await api.GetStringAsync($"/api/v1/targets/{target}/plan?runbook=omero-upgrade&to={OmeroHost.NewVersion}", ct);
        Assert.DoesNotContain(OmeroHost.DbPassword, planText, StringComparison.Ordinal);
        var plan = JsonDocument.Parse(planText).RootElement;
        Assert.Equal(OmeroHost.OldVersion, plan.GetProperty("fromVersion").GetString());
        Assert.Equal(OmeroHost.NewVersion, plan.GetProperty("toVersion").GetString());
        var phases = plan.GetProperty("phases").EnumerateArray().ToList();
        Assert.Equal(
            ["preflight", "release", "precheck", "backup", "stop", "keep-config", "switch", "upgrade-sql", "vacuum", "merge-scripts", "pip", "certificates", "bioformats-cache", "start", "post-checks", "checklist"],
            phases.Select(p => p.GetProperty("key").GetString()));
        var sql = phases.Single(p => p.GetProperty("pointOfNoReturn").GetBoolean());
        Assert.Equal("upgrade-sql", sql.GetProperty("key").GetString());
        Assert.Contains("sql/psql/OMERO5.4__0/OMERO5.3__0.sql", sql.GetProperty("commands").GetString(), StringComparison.Ordinal);
        Assert.False(phases.Single(p => p.GetProperty("key").GetString() == "vacuum").GetProperty("chosen").GetBoolean());
        Assert.Contains("pg_dump -Fc", phases.Single(p => p.GetProperty("key").GetString() == "backup").GetProperty("commands").GetString(), StringComparison.Ordinal);

        // The whole upgrade from the CLI; --wait waits through the manual checklist, which the test ticks like a person.
        var started = CliAsync(["runs", "start", "--target", target, "--runbook", "omero-upgrade", "--to", OmeroHost.NewVersion, "--wait"]);
        var runId = 0;
        await Eventually.TrueAsync(async () =>
        {
            if (started.IsCompleted)
            {
                Assert.Fail("runs start --wait ended before the checklist:\n" + (await started).Combined);
            }

            var runs = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={target}", ct);
            var latest = runs.EnumerateArray().FirstOrDefault();
            runId = latest.ValueKind == JsonValueKind.Object ? latest.GetProperty("id").GetInt32() : 0;
            return runId != 0 && latest.GetProperty("state").GetString() is "WaitingForChecklist" or "Failed" or "NeedsAttention";
        }, TimeSpan.FromMinutes(8));
        var run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}", ct);
        var log = await api.GetStringAsync($"/api/v1/runs/{runId}/log", ct);
        Assert.True(run.GetProperty("state").GetString() == "WaitingForChecklist", $"{run}\n{log}");
        Assert.Contains("YOU HAVE SUCCESSFULLY UPGRADED YOUR DATABASE TO VERSION OMERO5.4__0", log, StringComparison.Ordinal);
        Assert.DoesNotContain(OmeroHost.DbPassword, log, StringComparison.Ordinal);
        Assert.Equal("OMERO5.4__0", await omero.Host.DbVersionAsync());
        Assert.Equal("Skipped", run.GetProperty("phases").EnumerateArray().Single(p => p.GetProperty("key").GetString() == "vacuum").GetProperty("state").GetString());

        var tick = await CliAsync(["runs", "tick", runId.ToString(CultureInfo.InvariantCulture), "--all", "--note", "checked in OMERO.web"]);
        Assert.True(tick.ExitCode == 0, tick.Combined);
        var finished = await started;
        Assert.True(finished.ExitCode == 0, finished.Combined);
        Assert.Equal("Succeeded", (await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}", ct)).GetProperty("state").GetString());

        // The new server runs from the new release, with the facility's custom script merged in.
        var (status, statusOutput) = await omero.Host.RunAsync("omero admin status && readlink server/OMERO.server && test -f server/OMERO.server/lib/scripts/facility/Export_To_Archive.py");
        Assert.True(status == 0, statusOutput);
        Assert.Contains($"OMERO.server-{OmeroHost.NewVersion}-ice36", statusOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AReleaseDownloadedByTheRun_ThenAFailureAfterThePointOfNoReturn_RollsBack_ToTheSameDatabaseVersionAndRowCounts()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var omero = await OmeroTarget.CreateAsync(_app, ssh, postgres);
        var before = await omero.Host.RowCountsAsync();
        // The new release is not on the host: the configured URL serves it, and the run's first phase fetches it.
        var zipName = $"OMERO.server-{OmeroHost.NewVersion}-ice36.zip";
        var (moved, zipBase64) = await omero.Host.RunAsync($"base64 -w0 server/{zipName} && rm server/{zipName}");
        Assert.True(moved == 0, zipBase64);
        var download = $"/omero/{OmeroHost.NewVersion}/{zipName}";
        _releases.Put(download, Convert.FromBase64String(zipBase64.Trim()));
        // omero-certificates cannot be installed: the certificates phase, after the upgrade SQL, fails.
        var (removed, removedOutput) = await omero.Host.RunAsync("rm -f wheels/omero_certificates-*");
        Assert.True(removed == 0, removedOutput);

        using var api = ApiTokens.Client(_app.BaseUrl, _adminToken);
        using var planned = await api.PostAsJsonAsync($"/api/v1/targets/{omero.TargetId}/runs", new { runbook = "omero-upgrade", to = OmeroHost.NewVersion }, ct);
        Assert.True(planned.StatusCode == HttpStatusCode.Created, await planned.Content.ReadAsStringAsync(ct));
        var runId = (await planned.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("run").GetProperty("id").GetInt32();
        using (var start = await api.PostAsync($"/api/v1/runs/{runId}/start", null, ct))
        {
            Assert.True(start.IsSuccessStatusCode, await start.Content.ReadAsStringAsync(ct));
        }

        var run = await StoppedAsync(api, runId);
        Assert.True(run.GetProperty("state").GetString() == "Failed", run.ToString());
        var failed = run.GetProperty("phases").EnumerateArray().Single(p => p.GetProperty("state").GetString() == "Failed");
        Assert.Equal("certificates", failed.GetProperty("key").GetString());
        Assert.Equal("OMERO5.4__0", await omero.Host.DbVersionAsync());
        var failedLog = await api.GetStringAsync($"/api/v1/runs/{runId}/log", ct);
        Assert.Contains($"WARN The new release's zip is on the host: The release zip is not on the host yet; the run's first phase downloads it from {_releases.Url(download)}", failedLog, StringComparison.Ordinal);
        Assert.Contains("[release] downloading " + _releases.Url(download), failedLog, StringComparison.Ordinal);
        Assert.Contains("YOUR DATABASE IS READY FOR UPGRADE TO VERSION OMERO5.4__0", failedLog, StringComparison.Ordinal);
        Assert.Equal(1, _releases.Gets(download));

        using (var rollback = await api.PostAsJsonAsync($"/api/v1/runs/{runId}/rollback", new { reason = "omero-certificates is not installable here" }, ct))
        {
            Assert.True(rollback.IsSuccessStatusCode, await rollback.Content.ReadAsStringAsync(ct));
        }

        run = await StoppedAsync(api, runId);
        var log = await api.GetStringAsync($"/api/v1/runs/{runId}/log", ct);
        Assert.True(run.GetProperty("state").GetString() == "RolledBack", $"{run}\n{log}");
        Assert.Equal(["rb-switch", "rb-restore-db", "rb-start"],
            run.GetProperty("phases").EnumerateArray().Where(p => p.GetProperty("key").GetString()!.StartsWith("rb-", StringComparison.Ordinal)).Select(p => p.GetProperty("key").GetString()));
        Assert.Contains("[restore] done: the database is back at OMERO5.3__0", log, StringComparison.Ordinal);

        Assert.Equal("OMERO5.3__0", await omero.Host.DbVersionAsync());
        Assert.Equal(before, await omero.Host.RowCountsAsync());
        var (status, statusOutput) = await omero.Host.RunAsync("omero admin status && readlink server/OMERO.server");
        Assert.True(status == 0, statusOutput);
        Assert.Contains($"OMERO.server-{OmeroHost.OldVersion}-ice36", statusOutput, StringComparison.Ordinal);
    }

    /// <summary>Waits until the run stops moving (failed, rolled back, waiting for a person) and returns it.</summary>
    private static async Task<JsonElement> StoppedAsync(HttpClient api, int runId)
    {
        JsonElement run = default;
        await Eventually.TrueAsync(async () =>
        {
            run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}");
            return run.GetProperty("state").GetString() is not ("Planned" or "Running" or "RollingBack");
        }, TimeSpan.FromMinutes(8), () => run.ToString());
        return run;
    }

    private Task<ProcessRunner.Result> CliAsync(string[] args) =>
        ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args],
            environment: new Dictionary<string, string?>
            {
                ["UPGRADECONSOLE_URL"] = _app.BaseUrl,
                ["UPGRADECONSOLE_TOKEN"] = _adminToken,
                ["DOTNET_ENVIRONMENT"] = "Production",
            },
            workingDirectory: AppContext.BaseDirectory, timeout: TimeSpan.FromMinutes(10), check: false);
}
