using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;
using UpgradeConsole.Core.Omero;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Omero;

/// <summary>
/// Issue 18 for OMERO: an Operator rehearses the OMERO.server 5.3.5 → 5.6.3 upgrade on a copy with the CLI's
/// <c>runs rehearse --wait</c> against a real dashboard, the OMERO host double on the real sshd and the real
/// PostgreSQL. The precheck and the upgrade SQL run against a scratch database (or a throwaway cluster when the
/// OMERO role may not create databases) through the new release unpacked in a scratch directory; production stays
/// untouched (config.xml byte-equal, the installed release and the server as they were, every table's checksum) and
/// the copy is removed, whether the rehearsal passes (exit 0) or fails the way production would (exit 1).
/// </summary>
public sealed class RehearsingAnOmeroUpgradeTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private const string Runbook = "omero-upgrade";
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private readonly FileServer _releases = new();
    private OmeroTarget _omero = default!;
    private string _operatorToken = "";
    private string _adminToken = "";

    public async ValueTask InitializeAsync()
    {
        // Where this facility's hosts download OMERO releases from (used only for a release not on the host).
        _app.WithSetting("UpgradeConsole:Omero:ReleaseUrl", _releases.Url("/omero/{version}/OMERO.server-{version}-ice36.zip"));
        _app.ServeOverKestrel();
        var admin = await _app.CreateFirstAdminAsync();
        await _app.CreateUserAsync(admin, "olivia@example.org", "Operator");
        _operatorToken = await ApiTokens.CreateAsync(_app, "olivia@example.org", "rehearsal script", "Operator");
        _adminToken = await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "settings script", "Admin");
        _omero = await OmeroTarget.CreateAsync(_app, ssh, postgres);
    }

    private string Database => new NpgsqlConnectionStringBuilder(_omero.Host.DatabaseConnection).Database!;

    [Fact]
    public async Task Rehearsal_OnAScratchDatabase_Passes_AndLeavesProductionUntouched()
    {
        // The OMERO role may create databases here: the copy is a scratch database on the production server.
        await AllowCreatedbAsync();

        // The target asks for a passing rehearsal newer than 7 days: OMERO's preflight fails that check until one passes.
        using var settings = ApiTokens.Client(_app.BaseUrl, _adminToken);
        var target = await settings.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{_omero.TargetId}", TestContext.Current.CancellationToken);
        using (var patch = await settings.PatchAsJsonAsync($"/api/v1/targets/{_omero.TargetId}", new { version = target.GetProperty("version").GetString(), requirePassingRehearsalWithinDays = 7 }, TestContext.Current.CancellationToken))
        {
            Assert.True(patch.IsSuccessStatusCode, await patch.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        }

        var none = await RecentRehearsalCheckAsync(settings);
        Assert.Equal("Fail", none.GetProperty("status").GetString());
        Assert.Contains("newer than 7 days; it has none", none.GetProperty("explanation").GetString(), StringComparison.Ordinal);

        var before = await ProductionAsync();

        var cli = await CliAsync(["runs", "rehearse", "--target", _omero.TargetId.ToString(CultureInfo.InvariantCulture), "--runbook", Runbook, "--to", OmeroHost.NewVersion, "--wait"]);
        Assert.True(cli.ExitCode == 0, cli.Combined);
        Assert.Contains("YOUR DATABASE IS READY FOR UPGRADE TO VERSION OMERO5.4__0", cli.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("YOU HAVE SUCCESSFULLY UPGRADED YOUR DATABASE TO VERSION OMERO5.4__0", cli.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain(OmeroHost.DbPassword, cli.Combined, StringComparison.Ordinal);

        using var api = ApiTokens.Client(_app.BaseUrl, _operatorToken);
        var rehearsal = (await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={_omero.TargetId}", TestContext.Current.CancellationToken)).EnumerateArray().Single();
        Assert.Equal("rehearsal", rehearsal.GetProperty("kind").GetString());
        Assert.Equal(Runbook + "+rehearsal", rehearsal.GetProperty("runbookId").GetString());
        var id = rehearsal.GetProperty("id").GetInt32();
        var run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{id}", TestContext.Current.CancellationToken);
        var log = await api.GetStringAsync($"/api/v1/runs/{id}/log", TestContext.Current.CancellationToken);
        Assert.True(run.GetProperty("state").GetString() == "Succeeded", $"{run}\n{log}");
        var phases = run.GetProperty("phases").EnumerateArray().ToDictionary(p => p.GetProperty("key").GetString()!, p => p);
        Assert.Equal(["rehearsal-dump", "rehearsal-restore", "rehearsal-setup", "precheck", "upgrade-sql", "vacuum", "rehearsal-cleanup"], phases.Keys);
        Assert.Equal("Skipped", phases["vacuum"].GetProperty("state").GetString());
        Assert.All(phases.Where(p => p.Key != "vacuum"), p => Assert.Equal("Succeeded", p.Value.GetProperty("state").GetString()));
        Assert.Equal("the database is at OMERO5.4__0", phases["upgrade-sql"].GetProperty("message").GetString());
        Assert.Contains($"restored into {Database}_rehearsal_{id} on the production server", phases["rehearsal-restore"].GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains($"a copy of config.xml pointing at {Database}_rehearsal_{id}", log, StringComparison.Ordinal);
        Assert.Contains($"against {Database}_rehearsal_{id} on", log, StringComparison.Ordinal);
        PrintFigures(run);

        await AssertUntouchedAndCleanedAsync(before, id, log);
        Assert.Contains(await _app.AuditEventsAsync(), e => e.Action == "run.rehearse" && e.Subject == $"run {id}" && e.Actor.Contains("olivia", StringComparison.Ordinal));

        // The real run's plan shows the rehearsal: when, which dump, its outcome and each rehearsed phase's duration.
        var plan = await api.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{_omero.TargetId}/plan?runbook={Runbook}&to={OmeroHost.NewVersion}", TestContext.Current.CancellationToken);
        var latest = plan.GetProperty("latestRehearsal");
        Assert.Equal(id, latest.GetProperty("run").GetInt32());
        Assert.True(latest.GetProperty("passed").GetBoolean());
        Assert.Contains($"omero-{Database}-rehearsal{id}-a1.dump", latest.GetProperty("dump").GetString(), StringComparison.Ordinal);
        Assert.Contains(latest.GetProperty("phases").EnumerateArray(), p => p.GetProperty("key").GetString() == "upgrade-sql" && p.GetProperty("seconds").GetDouble() > 0);

        var passed = await RecentRehearsalCheckAsync(settings);
        Assert.Equal("Pass", passed.GetProperty("status").GetString());
        Assert.Contains($"rehearsal {id} passed", passed.GetProperty("explanation").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rehearsal_OfAReleaseNotOnTheHost_DownloadsItIntoTheScratchDirectory_NotBesideProduction()
    {
        await AllowCreatedbAsync();
        // The new release is not on the host: the configured URL serves it.
        var zipName = $"OMERO.server-{OmeroHost.NewVersion}-ice36.zip";
        var (moved, zipBase64) = await _omero.Host.RunAsync($"base64 -w0 server/{zipName} && rm server/{zipName}");
        Assert.True(moved == 0, zipBase64);
        var download = $"/omero/{OmeroHost.NewVersion}/{zipName}";
        _releases.Put(download, Convert.FromBase64String(zipBase64.Trim()));
        var before = await ProductionAsync();

        var cli = await CliAsync(["runs", "rehearse", "--target", _omero.TargetId.ToString(CultureInfo.InvariantCulture), "--runbook", Runbook, "--to", OmeroHost.NewVersion, "--wait"]);
        Assert.True(cli.ExitCode == 0, cli.Combined);
        Assert.Contains("[release] downloading " + _releases.Url(download), cli.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("YOU HAVE SUCCESSFULLY UPGRADED YOUR DATABASE TO VERSION OMERO5.4__0", cli.StandardOutput, StringComparison.Ordinal);

        using var api = ApiTokens.Client(_app.BaseUrl, _operatorToken);
        var id = (await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={_omero.TargetId}", TestContext.Current.CancellationToken)).EnumerateArray().Single().GetProperty("id").GetInt32();
        var log = await api.GetStringAsync($"/api/v1/runs/{id}/log", TestContext.Current.CancellationToken);
        var scratch = RehearsalCopy.ScratchDirectory(log);
        Assert.Contains($"[rehearsal] unpacking {scratch}/{zipName} into {scratch}", log, StringComparison.Ordinal);
        // Production's listing (server/ included) is unchanged: the zip was not put beside OMERO.server.
        await AssertUntouchedAndCleanedAsync(before, id, log);
    }

    /// <summary>The OMERO role may create databases: the rehearsal's copy is a scratch database on the production server.</summary>
    private async Task AllowCreatedbAsync()
    {
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"ALTER ROLE \"{new NpgsqlConnectionStringBuilder(_omero.Host.DatabaseConnection).Username}\" CREATEDB", conn);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>Runs the target's preflight through the API and returns its recent-rehearsal check.</summary>
    private async Task<JsonElement> RecentRehearsalCheckAsync(HttpClient api)
    {
        using var response = await api.PostAsync($"/api/v1/targets/{_omero.TargetId}/preflight", null, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("id").GetString() == "rehearsal.recent").Clone();
    }

    [Fact]
    public async Task Rehearsal_InAThrowawayCluster_FailsLikeProductionWould_OnWhatThePrecheckDoesNotSee_AndLeavesProductionUntouched()
    {
        Assert.False(await _omero.Host.ScalarAsync<bool>("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"));
        // A leftover of an abandoned upgrade attempt: the precheck says READY, the upgrade script's CREATE TABLE _roles fails.
        await _omero.Host.ExecuteAsync("CREATE TABLE _roles (note text); INSERT INTO _roles VALUES ('left by a manual attempt in 2019')");
        var before = await ProductionAsync();

        var cli = await CliAsync(["runs", "rehearse", "--target", _omero.TargetId.ToString(CultureInfo.InvariantCulture), "--runbook", Runbook, "--to", OmeroHost.NewVersion, "--wait"]);
        Assert.True(cli.ExitCode == 1, cli.Combined);
        Assert.Contains("YOUR DATABASE IS READY FOR UPGRADE TO VERSION OMERO5.4__0", cli.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("relation \"_roles\" already exists", cli.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("The rehearsal failed", cli.StandardError, StringComparison.Ordinal);
        Assert.Contains("Production was not touched", cli.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain(OmeroHost.DbPassword, cli.Combined, StringComparison.Ordinal);

        using var api = ApiTokens.Client(_app.BaseUrl, _operatorToken);
        var id = (await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={_omero.TargetId}", TestContext.Current.CancellationToken)).EnumerateArray().Single().GetProperty("id").GetInt32();
        var run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{id}", TestContext.Current.CancellationToken);
        var log = await api.GetStringAsync($"/api/v1/runs/{id}/log", TestContext.Current.CancellationToken);
        Assert.True(run.GetProperty("state").GetString() == "Failed", $"{run}\n{log}");
        var states = run.GetProperty("phases").EnumerateArray().ToDictionary(p => p.GetProperty("key").GetString()!, p => p.GetProperty("state").GetString());
        Assert.Equal("Succeeded", states["precheck"]);
        Assert.Equal("Failed", states["upgrade-sql"]);
        Assert.Equal("Succeeded", states["rehearsal-cleanup"]);
        Assert.Contains("may not create databases (CREATEDB): a throwaway PostgreSQL cluster", log, StringComparison.Ordinal);
        Assert.Contains("in the throwaway cluster (127.0.0.1:", log, StringComparison.Ordinal);
        Assert.Contains("stopped the throwaway cluster", log, StringComparison.Ordinal);
        PrintFigures(run);

        // No postgres of the cluster is left (the pattern cannot match pgrep's own command line: "[/]" precedes "pgcluster").
        var scratch = RehearsalCopy.ScratchDirectory(log);
        Assert.NotNull(scratch);
        var processes = await ssh.RunAsync($"pgrep -u {ssh.User} -f -- '{Regex.Escape(scratch)}[/]pgcluster/data' | wc -l", check: false);
        Assert.Equal("0", processes.StandardOutput.Trim());
        await AssertUntouchedAndCleanedAsync(before, id, log);
    }

    /// <summary>What production is: config.xml's bytes, where OMERO.server points and what lies beside it, the server, every table.</summary>
    private async Task<(string Files, string Status, string Tables)> ProductionAsync()
    {
        var (exit, files) = await _omero.Host.RunAsync("sha256sum server/OMERO.server/etc/grid/config.xml && readlink server/OMERO.server && ls -A server backups");
        Assert.True(exit == 0, files);
        var (_, status) = await _omero.Host.RunAsync("omero admin status && echo running");
        return (files, status.Trim(), await TableChecksums.EveryTableAsync(_omero.Host.DatabaseConnection));
    }

    private async Task AssertUntouchedAndCleanedAsync((string Files, string Status, string Tables) before, int rehearsalId, string log)
    {
        var after = await ProductionAsync();
        Assert.Equal(before.Files, after.Files);
        Assert.Contains($"OMERO.server-{OmeroHost.OldVersion}-ice36", after.Files, StringComparison.Ordinal);
        Assert.Equal("running", after.Status);
        Assert.Equal(before.Tables, after.Tables);
        Assert.Equal("OMERO5.3__0", await _omero.Host.DbVersionAsync());

        // The copy is gone: no scratch database (only this target's: others rehearse on the server meanwhile), no scratch directory, no dump.
        Assert.Equal(0L, await RehearsalCopy.ScratchDatabasesAsync(postgres, Database));
        Assert.NotNull(RehearsalCopy.ScratchDirectory(log));
        Assert.Equal("0", await RehearsalCopy.LeftAsync(ssh, RehearsalScripts.DumpPrefix(OmeroScripts.RehearsalProduct, Database, rehearsalId), log, _omero.Host.AbsoluteDirectory + "/backups"));
    }

    /// <summary>The rehearsed phases' time against the rehearsal's own (dump, restore, setup, cleanup), in the test output.</summary>
    private static void PrintFigures(JsonElement run)
    {
        var seconds = run.GetProperty("phases").EnumerateArray()
            .Where(p => p.GetProperty("startedAt").ValueKind == JsonValueKind.String && p.GetProperty("endedAt").ValueKind == JsonValueKind.String)
            .ToDictionary(p => p.GetProperty("key").GetString()!, p => (p.GetProperty("endedAt").GetDateTimeOffset() - p.GetProperty("startedAt").GetDateTimeOffset()).TotalSeconds);
        var rehearsed = seconds.Where(p => !p.Key.StartsWith("rehearsal-", StringComparison.Ordinal)).Sum(p => p.Value);
        var overhead = seconds.Where(p => p.Key.StartsWith("rehearsal-", StringComparison.Ordinal)).Sum(p => p.Value);
        var each = string.Join(' ', seconds.Select(p => p.Key + "=" + p.Value.ToString("0.00", CultureInfo.InvariantCulture)));
        TestContext.Current.TestOutputHelper?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"rehearsed phases {rehearsed:0.00} s; overhead (dump+restore+setup+cleanup) {overhead:0.00} s; {each}"));
    }

    private Task<ProcessRunner.Result> CliAsync(string[] args) => DashboardCli.RunAsync(_app.BaseUrl, _operatorToken, args, TimeSpan.FromMinutes(8));

    public async ValueTask DisposeAsync()
    {
        await _omero.DisposeAsync();
        await _app.DisposeAsync();
        _releases.Dispose();
    }
}
