using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.BackendAi;

/// <summary>
/// A Backend.AI cluster (a manager with the storage proxy, a web server and five agents, each a real sshd with its own
/// venv upgraded by real pip; the manager's real PostgreSQL database) upgraded through the CLI's <c>runs start --wait</c>:
/// the minor hop 23.09.9 → 23.09.10 in rolling batches, then the major hop 23.09.10 → 24.03.0 with the missing revisions
/// applied; the plan refuses the guide's forbidden hops and a hop of the other kind. Every host's lines come under
/// its address in the run's log.
/// </summary>
public sealed class UpgradingABackendAiClusterTests(PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private BackendAiCluster _cluster = default!;
    private HttpClient _admin = default!;
    private string _adminToken = "";
    private int _targetId;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
        _cluster = await BackendAiCluster.CreateAsync(postgres, agents: 5, version: "23.09.9", ownVenvs: true);
        _adminToken = await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "admin", Roles.Admin);
        _admin = ApiTokens.Client(_app.BaseUrl, _adminToken);
        _targetId = await BackendAiTarget.AddAsync(_app, _admin, _cluster);
    }

    public async ValueTask DisposeAsync()
    {
        _admin.Dispose();
        await _app.DisposeAsync();
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task AMinorThenAMajorHop_UpgradeEveryHostThroughTheCli_AndTheForbiddenHopsAreRefused()
    {
        var ct = TestContext.Current.CancellationToken;
        var target = _targetId.ToString(CultureInfo.InvariantCulture);

        // The guide's forbidden hop: a major upgrade from a minor that is not the prior release's latest. The plan names the rule and the chain.
        using (var refused = await _admin.GetAsync($"/api/v1/targets/{target}/plan?runbook=backendai-major&to=24.03.0", ct))
        {
            var text = await refused.Content.ReadAsStringAsync(ct);
            Assert.True(refused.StatusCode == HttpStatusCode.Conflict, text);
            Assert.Contains("a major upgrade starts only from the very latest minor of the prior release (23.09.10), not 23.09.9", text, StringComparison.Ordinal);
            Assert.Contains("23.09.9 → 23.09.10 (minor), 23.09.10 → 24.03.0 (major)", text, StringComparison.Ordinal);
        }

        // A minor hop is not planned with the major runbook.
        using (var wrongKind = await _admin.GetAsync($"/api/v1/targets/{target}/plan?runbook=backendai-major&to=23.09.10", ct))
        {
            var text = await wrongKind.Content.ReadAsStringAsync(ct);
            Assert.True(wrongKind.StatusCode == HttpStatusCode.Conflict, text);
            Assert.Contains("is a minor upgrade: plan it with the runbook backendai-minor", text, StringComparison.Ordinal);
        }

        // The minor plan: the manager's phases with alembic as the point of no return, the components rolling.
        var plan = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{target}/plan?runbook=backendai-minor&to=23.09.10", ct);
        Assert.Equal(("23.09.9", "23.09.10"), (plan.GetProperty("fromVersion").GetString(), plan.GetProperty("toVersion").GetString()));
        var phases = plan.GetProperty("phases").EnumerateArray().ToList();
        Assert.Equal(["changelog", "preflight", "schema-check", "manager-stop", "manager-backup", "manager-install", "manager-migrate", "manager-start", "components", "versions"],
            phases.Select(p => p.GetProperty("key").GetString()));
        Assert.Equal("manager-migrate", phases.Single(p => p.GetProperty("pointOfNoReturn").GetBoolean()).GetProperty("key").GetString());
        Assert.Contains("upgrade head", phases.Single(p => p.GetProperty("key").GetString() == "manager-migrate").GetProperty("commands").GetString(), StringComparison.Ordinal);

        var minor = await UpgradeAsync("backendai-minor", "23.09.10", ct);
        Assert.Contains("Running upgrade 2c3d4e5f6071 -> 3d4e5f607182", minor.Log, StringComparison.Ordinal);
        Assert.Contains("[schema] the head of backend.ai-manager 23.09.10: 3d4e5f607182", minor.Log, StringComparison.Ordinal);
        await AssertEveryHostOnAsync("23.09.10", "3d4e5f607182", minor.Log);
        // Rolling: seven hosts less the manager, a quarter at a time (one host a batch).
        Assert.Contains("6 host(s), in rolling batches of 1: ", minor.Log, StringComparison.Ordinal);

        // The major hop from the prior release's latest minor: everything stopped, alembic, then the missing revisions (the real command name).
        var majorPlan = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{target}/plan?runbook=backendai-major&to=24.03.0", ct);
        var majorPhases = majorPlan.GetProperty("phases").EnumerateArray().ToList();
        var revisions = majorPhases.Single(p => p.GetProperty("key").GetString() == "manager-revisions");
        Assert.Contains("apply-missing-revisions", revisions.GetProperty("commands").GetString(), StringComparison.Ordinal);
        var major = await UpgradeAsync("backendai-major", "24.03.0", ct);
        Assert.Contains("backend.ai mgr schema apply-missing-revisions 23.09.10", major.Log, StringComparison.Ordinal);
        Assert.Contains("Running upgrade 3d4e5f607182 -> 4e5f60718293", major.Log, StringComparison.Ordinal);
        await AssertEveryHostOnAsync("24.03.0", "4e5f60718293", major.Log);
    }

    /// <summary>Every host's packages at <paramref name="version"/>, its service running, its lines in the log under its address; the database at <paramref name="head"/>.</summary>
    private async Task AssertEveryHostOnAsync(string version, string head, string log)
    {
        foreach (var node in _cluster.Nodes)
        {
            var installed = await _cluster.InstalledAsync(node);
            Assert.All(installed, p => Assert.True(p.Value == version, $"{node.Line}: {p.Key} {p.Value}\n{log}"));
            Assert.True(_cluster.IsRunning(node), $"{node.Line} is not running");
            Assert.Contains($"[{node.Address}] [install] ", log, StringComparison.Ordinal);
        }

        await using var conn = new NpgsqlConnection(_cluster.DatabaseConnection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT version_num FROM alembic_version", conn);
        Assert.Equal(head, await cmd.ExecuteScalarAsync());
    }

    /// <summary><c>runs start --wait</c>, the checklist ticked like a person, and the run's log once it succeeded.</summary>
    private async Task<(int RunId, string Log)> UpgradeAsync(string runbook, string to, CancellationToken ct)
    {
        var target = _targetId.ToString(CultureInfo.InvariantCulture);
        var started = CliAsync(["runs", "start", "--target", target, "--runbook", runbook, "--to", to, "--wait"]);
        var runId = 0;
        await Eventually.TrueAsync(async () =>
        {
            if (started.IsCompleted)
            {
                Assert.Fail("runs start --wait ended before the checklist:\n" + (await started).Combined);
            }

            var runs = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={target}", ct);
            var latest = runs.EnumerateArray().FirstOrDefault();
            runId = latest.ValueKind == JsonValueKind.Object && latest.GetProperty("runbookId").GetString() == runbook ? latest.GetProperty("id").GetInt32() : 0;
            return runId != 0 && latest.GetProperty("state").GetString() == "WaitingForChecklist";
        }, TimeSpan.FromMinutes(3));

        var tick = await CliAsync(["runs", "tick", runId.ToString(CultureInfo.InvariantCulture), "--all", "--note", "read and announced"]);
        Assert.True(tick.ExitCode == 0, tick.Combined);
        var finished = await started;
        var log = await _admin.GetStringAsync($"/api/v1/runs/{runId}/log", ct);
        Assert.True(finished.ExitCode == 0, finished.Combined + "\n" + log);
        Assert.Equal("Succeeded", (await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}", ct)).GetProperty("state").GetString());
        Assert.DoesNotContain(BackendAiCluster.DbPassword, log, StringComparison.Ordinal);
        return (runId, log);
    }

    private Task<ProcessRunner.Result> CliAsync(string[] args) => DashboardCli.RunAsync(_app.BaseUrl, _adminToken, args);
}
