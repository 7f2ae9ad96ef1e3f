using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Chains;

namespace UpgradeConsole.Tests.BackendAi;

/// <summary>
/// A Backend.AI cluster on 23.09.9 (a manager with the storage proxy, a web server and two agents, each a real sshd with
/// its own venv upgraded by real pip; the manager's real PostgreSQL database) upgraded to 24.03.0 as a chain of runs
/// (ADR 0028) through the CLI's <c>runs start --chain --wait</c>: the minor hop, then the major hop planned and started by
/// the chain's job with the first hop's approval; each hop's checklist ticked by a person. A failing preflight of the
/// second hop stops the chain before anything of it changes; the job delivered again creates nothing.
/// </summary>
public sealed class UpgradingAlongAChainTests(PostgresServer postgres) : IAsyncLifetime
{
    private const string MajorHead = "4e5f60718293";

    private readonly UpgradeConsoleApplicationFactory _app = new();
    private BackendAiCluster _cluster = default!;
    private HttpClient _admin = default!;
    private string _adminToken = "";

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
        _cluster = await BackendAiCluster.CreateAsync(postgres, agents: 2, version: "23.09.9", ownVenvs: true);
        _adminToken = await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "admin", Roles.Admin);
        _admin = ApiTokens.Client(_app.BaseUrl, _adminToken);
    }

    public async ValueTask DisposeAsync()
    {
        _admin.Dispose();
        await _app.DisposeAsync();
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task AChainOfTwoHops_RunsHopAfterHopThroughTheCli_WithTheFirstApprovalCarried()
    {
        var ct = TestContext.Current.CancellationToken;
        var targetId = await BackendAiTarget.AddAsync(_app, _admin, _cluster, requireApproval: true);
        var operatorEmail = await _app.SignedInEmailAsync(Roles.Operator);
        using var approver = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, operatorEmail, "approver", Roles.Operator));

        // The plan lists every hop; without the opt-in the refusal names the chain as before.
        using (var refused = await _admin.GetAsync($"/api/v1/targets/{targetId}/plan?runbook=backendai-minor&to=24.03.0", ct))
        {
            var text = await refused.Content.ReadAsStringAsync(ct);
            Assert.True(refused.StatusCode == HttpStatusCode.Conflict, text);
            Assert.Contains("The allowed path is a chain of 2 upgrades, each a run of its own", text, StringComparison.Ordinal);
        }

        var plan = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{targetId}/plan?runbook=backendai-minor&to=24.03.0&chain=true", ct);
        Assert.Equal(("23.09.9", "23.09.10"), (plan.GetProperty("fromVersion").GetString(), plan.GetProperty("toVersion").GetString()));
        Assert.Equal(["23.09.9 → 23.09.10 minor backendai-minor", "23.09.10 → 24.03.0 major backendai-major"],
            plan.GetProperty("chain").EnumerateArray().Select(h => $"{h.GetProperty("fromVersion")} → {h.GetProperty("toVersion")} {h.GetProperty("kind")} {h.GetProperty("runbook")}"));

        var started = CliAsync(["runs", "start", "--target", targetId.ToString(CultureInfo.InvariantCulture), "--runbook", "backendai-minor", "--to", "24.03.0", "--chain", "--wait"]);
        var first = await HopAsync(targetId, 1, "Planned", started, ct);
        using (var approved = await approver.PostAsync($"/api/v1/runs/{first}/approve", null, ct))
        {
            Assert.True(approved.IsSuccessStatusCode, await approved.Content.ReadAsStringAsync(ct));
        }

        await TickWhenWaitingAsync(targetId, 1, started, ct);
        await TickWhenWaitingAsync(targetId, 2, started, ct);
        var finished = await started;
        Assert.True(finished.ExitCode == 0, finished.Combined);

        var second = await HopAsync(targetId, 2, "Succeeded", started, ct);
        Assert.Contains($"Following run {second}: hop 2 of 2 of the chain 23.09.9 → 24.03.0.", finished.Combined, StringComparison.Ordinal);
        var runs = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={targetId}", ct);
        Assert.Equal(2, runs.GetArrayLength());
        var firstRun = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{first}", ct);
        var secondRun = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{second}", ct);
        Assert.Equal(second, firstRun.GetProperty("chain").GetProperty("nextRunId").GetInt32());
        Assert.Equal(first, secondRun.GetProperty("chain").GetProperty("previousRunId").GetInt32());
        Assert.Equal(firstRun.GetProperty("chain").GetProperty("id").GetString(), secondRun.GetProperty("chain").GetProperty("id").GetString());
        Assert.Equal(("backendai-major", "23.09.10", "24.03.0"), (secondRun.GetProperty("runbookId").GetString(), secondRun.GetProperty("fromVersion").GetString(), secondRun.GetProperty("toVersion").GetString()));
        Assert.Equal((operatorEmail, UpgradeConsoleApplicationFactory.AdminEmail), (secondRun.GetProperty("approvedBy").GetString(), secondRun.GetProperty("startedBy").GetString()));

        var audit = await _app.AuditEventsAsync();
        var carried = Assert.Single(audit, e => e.Action == "run.chain-approval-carried");
        Assert.Equal(("system", $"run {second}"), (carried.Actor, carried.Subject));
        Assert.Contains(operatorEmail, carried.Details, StringComparison.Ordinal);
        Assert.Single(audit, e => e.Action == "run.chain-plan" && e.Subject == $"run {first}");
        Assert.Single(audit, e => e.Action == "run.chain-next" && e.Subject == $"run {second}");

        foreach (var node in _cluster.Nodes)
        {
            Assert.All(await _cluster.InstalledAsync(node), p => Assert.True(p.Value == "24.03.0", $"{node.Line}: {p.Key} {p.Value}"));
        }

        Assert.Equal(MajorHead, await AlembicRevisionAsync());

        // Hangfire delivers at least once: the first hop's job again, twice at once, creates no second run of hop 2.
        await Task.WhenAll(NextHopAsync(first), NextHopAsync(first));
        Assert.Equal(2, (await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={targetId}", ct)).GetArrayLength());
        Assert.Single(await _app.AuditEventsAsync(), e => e.Action == "run.chain-next");
    }

    [Fact]
    public async Task ASecondHopWhosePreflightFails_StopsTheChain_BeforeAnythingOfItChanges()
    {
        var ct = TestContext.Current.CancellationToken;
        var targetId = await BackendAiTarget.AddAsync(_app, _admin, _cluster);

        var started = CliAsync(["runs", "start", "--target", targetId.ToString(CultureInfo.InvariantCulture), "--runbook", "backendai-minor", "--to", "24.03.0", "--chain", "--wait"]);
        await TickWhenWaitingAsync(targetId, 1, started, ct);
        // The second hop waits for its announcement first; sessions start meanwhile, and its preflight finds them.
        var second = await HopAsync(targetId, 2, "WaitingForChecklist", started, ct);
        await _cluster.ExecuteAsync("""
            INSERT INTO kernels (session_id, session_name, cluster_role, cluster_idx, agent, status)
            VALUES ('00000000-0000-0000-0000-0000000000b1', 'late', 'main', 0, 'i-agent01', 'RUNNING')
            """);
        var tick = await CliAsync(["runs", "tick", second.ToString(CultureInfo.InvariantCulture), "--all", "--note", "announced"]);
        Assert.True(tick.ExitCode == 0, tick.Combined);

        var finished = await started;
        Assert.True(finished.ExitCode == 1, finished.Combined);
        var run = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{second}", ct);
        Assert.Equal("Failed", run.GetProperty("state").GetString());
        var preflight = run.GetProperty("phases").EnumerateArray().Single(p => p.GetProperty("key").GetString() == "preflight");
        Assert.True(preflight.GetProperty("state").GetString() == "Failed", preflight.ToString());
        Assert.Contains("session", preflight.GetProperty("message").GetString(), StringComparison.OrdinalIgnoreCase);
        Assert.All(run.GetProperty("phases").EnumerateArray().Where(p => p.GetProperty("key").GetString() is "manager-install" or "manager-migrate" or "components"),
            p => Assert.Equal("Pending", p.GetProperty("state").GetString()));
        foreach (var node in _cluster.Nodes)
        {
            Assert.All(await _cluster.InstalledAsync(node), p => Assert.True(p.Value == "23.09.10", $"{node.Line}: {p.Key} {p.Value}"));
        }

        // A failed hop enqueues nothing, and its job delivered anyway creates nothing; the first hop's again creates no second run.
        await NextHopAsync(second);
        var first = run.GetProperty("chain").GetProperty("previousRunId").GetInt32();
        await NextHopAsync(first);
        Assert.Equal(2, (await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={targetId}", ct)).GetArrayLength());
        Assert.True(run.GetProperty("chain").GetProperty("nextRunId").ValueKind == JsonValueKind.Null);
    }

    [Fact]
    public async Task AChainWhoseStarterWasDemoted_StopsAfterTheHop_WithTheReasonOnTheRun()
    {
        var ct = TestContext.Current.CancellationToken;
        var targetId = await BackendAiTarget.AddAsync(_app, _admin, _cluster);
        var operatorEmail = await _app.SignedInEmailAsync(Roles.Operator);
        var operatorToken = await ApiTokens.CreateAsync(_app, operatorEmail, "chain", Roles.Operator);

        // The Operator starts the chain; while the first hop waits for its checklist an Admin makes them a Viewer.
        var started = DashboardCli.RunAsync(_app.BaseUrl, operatorToken,
            ["runs", "start", "--target", targetId.ToString(CultureInfo.InvariantCulture), "--runbook", "backendai-minor", "--to", "24.03.0", "--chain", "--wait"]);
        var first = await HopAsync(targetId, 1, "WaitingForChecklist", started, ct);
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var accounts = scope.ServiceProvider.GetRequiredService<UpgradeConsole.Web.Accounts.UserAdministration>();
            var userId = (await accounts.ListAsync()).Single(u => u.Email == operatorEmail).Id;
            Assert.True((await accounts.SetRoleAsync(userId, Roles.Viewer)).Succeeded);
        }

        await TickWhenWaitingAsync(targetId, 1, started, ct);
        var finished = await started;
        Assert.True(finished.ExitCode == 1, finished.Combined);
        Assert.Contains($"The chain stopped after run {first}: Hop 2 of the chain (23.09.10 → 24.03.0 (major)) could not be planned", finished.Combined, StringComparison.Ordinal);

        var run = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{first}", ct);
        Assert.Equal("Succeeded", run.GetProperty("state").GetString());
        Assert.Contains("Your role (Viewer) does not allow this", run.GetProperty("chain").GetProperty("stopped").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, (await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={targetId}", ct)).GetArrayLength());
        Assert.Single(await _app.AuditEventsAsync(), e => e.Action == "run.chain-stop" && e.Subject == $"run {first}");
    }

    /// <summary>The run of hop <paramref name="hop"/> of the target's chain, once it is in <paramref name="state"/>.</summary>
    private async Task<int> HopAsync(int targetId, int hop, string state, Task<ProcessRunner.Result> cli, CancellationToken ct)
    {
        var id = 0;
        await Eventually.TrueAsync(async () =>
        {
            if (cli.IsCompleted && state != "Succeeded")
            {
                Assert.Fail($"runs start --chain --wait ended before hop {hop} was {state}:\n" + (await cli).Combined);
            }

            var runs = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={targetId}", ct);
            var found = runs.EnumerateArray().FirstOrDefault(r => r.TryGetProperty("chain", out var c) && c.ValueKind == JsonValueKind.Object && c.GetProperty("hop").GetInt32() == hop);
            id = found.ValueKind == JsonValueKind.Object ? found.GetProperty("id").GetInt32() : 0;
            return id != 0 && found.GetProperty("state").GetString() == state;
        }, TimeSpan.FromMinutes(3), () => $"hop {hop} is not {state}");
        return id;
    }

    /// <summary>Ticks hop <paramref name="hop"/>'s checklist as a person would, once the run waits for it.</summary>
    private async Task TickWhenWaitingAsync(int targetId, int hop, Task<ProcessRunner.Result> cli, CancellationToken ct)
    {
        var id = await HopAsync(targetId, hop, "WaitingForChecklist", cli, ct);
        var tick = await CliAsync(["runs", "tick", id.ToString(CultureInfo.InvariantCulture), "--all", "--note", "read and announced"]);
        Assert.True(tick.ExitCode == 0, tick.Combined);
    }

    /// <summary>The next-hop job as Hangfire runs it: resolved in a scope of its own.</summary>
    private async Task NextHopAsync(int previousRunId)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<ChainJob>().NextHopAsync(previousRunId, CancellationToken.None);
    }

    private async Task<string?> AlembicRevisionAsync()
    {
        await using var conn = new NpgsqlConnection(_cluster.DatabaseConnection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT version_num FROM alembic_version", conn);
        return await cmd.ExecuteScalarAsync() as string;
    }

    private Task<ProcessRunner.Result> CliAsync(string[] args) => DashboardCli.RunAsync(_app.BaseUrl, _adminToken, args);
}
