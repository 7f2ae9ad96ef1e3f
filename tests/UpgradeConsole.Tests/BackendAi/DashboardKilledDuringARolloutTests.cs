using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.BackendAi;

/// <summary>
/// The dashboard process is killed (SIGKILL) in the middle of a Backend.AI minor upgrade's rolling phase, while one host's
/// service is still starting in the second batch (the double holds its start command), and started again: the phase is
/// taken up from each host's stored progress. The hosts already done are not run again, the held host's step is
/// reattached (not started a second time) and finishes once released, the last batch runs, and every host's every
/// line is in the run's log exactly once. On the dashboard's embedded SQLite, as a single-node facility runs it.
/// </summary>
public sealed class DashboardKilledDuringARolloutTests(PostgresServer postgres) : IAsyncDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("uc-bai-kill-").FullName;
    private BackendAiCluster? _cluster;

    [Fact]
    public async Task TheRollingPhase_ContinuesAfterARestart_WithNoHostRunTwiceAndNoLineLostOrRepeated()
    {
        var ct = TestContext.Current.CancellationToken;
        var cluster = _cluster = await BackendAiCluster.CreateAsync(postgres, agents: 4, version: "23.09.9", ownVenvs: true);
        // The five hosts the rolling phase acts on, in batches of two: the fourth is in the second batch.
        var rolling = cluster.Nodes.Skip(1).ToList();
        Assert.Equal(5, rolling.Count);
        var held = rolling[3];

        string token;
        int runId;
        await using (var app = new UpgradeConsoleApplicationFactory(DatabaseProvider.Sqlite, null, _data))
        {
            app.ServeOverKestrel();
            await app.CreateFirstAdminAsync();
            token = await ApiTokens.CreateAsync(app, UpgradeConsoleApplicationFactory.AdminEmail, "kill test", Roles.Admin);
            using var api = ApiTokens.Client(app.BaseUrl, token);
            var targetId = await BackendAiTarget.AddAsync(app, api, cluster);
            using var planned = await api.PostAsJsonAsync($"/api/v1/targets/{targetId}/runs", new { runbook = "backendai-minor", to = "23.09.10", batchSize = 2 }, ct);
            var text = await planned.Content.ReadAsStringAsync(ct);
            Assert.True(planned.StatusCode == HttpStatusCode.Created, text);
            runId = JsonDocument.Parse(text).RootElement.GetProperty("run").GetProperty("id").GetInt32();
        }

        var run = runId.ToString(CultureInfo.InvariantCulture);
        cluster.Hold(held);

        // Process A starts the run, the checklist is ticked, and A is killed once the held host is starting its service.
        await using (var first = await DashboardProcess.StartAsync(_data))
        {
            using var api = ApiTokens.Client(first.BaseUrl, token);
            (await api.PostAsync($"/api/v1/runs/{run}/start", null, ct)).EnsureSuccessStatusCode();
            await TickWhenWaitingAsync(first, api, token, run);
            var seen = "";
            await Eventually.TrueAsync(async () => (seen = await api.GetStringAsync($"/api/v1/runs/{run}/log", ct)).Contains($"[{held.Address}] [start] ", StringComparison.Ordinal),
                TimeSpan.FromMinutes(6), () => seen);
            await first.KillAsync();
        }

        Assert.False(cluster.IsRunning(held));

        // Process B takes the phase up again; the held host's start is released only then.
        await using (var second = await DashboardProcess.StartAsync(_data))
        {
            using var api = ApiTokens.Client(second.BaseUrl, token);
            await Eventually.TrueAsync(async () => (await api.GetStringAsync($"/api/v1/runs/{run}/log", ct)).Contains("continuing after an interruption", StringComparison.Ordinal),
                TimeSpan.FromMinutes(2), () => second.Output);
            cluster.Release(held);

            JsonElement state = default;
            await Eventually.TrueAsync(async () =>
            {
                state = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{run}", ct);
                return state.GetProperty("state").GetString() is not ("Running" or "Planned" or "WaitingForChecklist");
            }, TimeSpan.FromMinutes(6), () => second.Output);
            var log = await api.GetStringAsync($"/api/v1/runs/{run}/log", ct);
            Assert.True(state.GetProperty("state").GetString() == "Succeeded", $"{state}\n{log}\n{second.Output}");

            var lines = log.Split('\n');
            Assert.Contains(lines, l => l.Contains("continuing after an interruption", StringComparison.Ordinal));
            foreach (var node in rolling)
            {
                // Each host's turn ran once: one stop, one install of each package, one start, one health verdict; no skip (no second attempt).
                var mine = lines.Where(l => l.Contains($"[{node.Address}] ", StringComparison.Ordinal)).ToList();
                Assert.True(mine.Count(l => l.Contains("[stop] stopped", StringComparison.Ordinal)) == 1, $"{node.Line}\n{log}");
                Assert.True(mine.Count(l => l.Contains("[start] started", StringComparison.Ordinal)) == 1, $"{node.Line}\n{log}");
                Assert.True(mine.Count(l => l.Contains("[health] healthy", StringComparison.Ordinal)) == 1, $"{node.Line}\n{log}");
                Assert.DoesNotContain(mine, l => l.Contains("[skip]", StringComparison.Ordinal));
                // No line of the host stored twice (the relay, the reattach and the restart each write a line once).
                var repeated = mine.Where(l => !l.StartsWith("──", StringComparison.Ordinal)).GroupBy(l => l, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
                Assert.True(repeated.Count == 0, $"{node.Line}: repeated lines\n{string.Join('\n', repeated)}\n{log}");
                var installed = await cluster.InstalledAsync(node);
                Assert.All(installed, p => Assert.True(p.Value == "23.09.10", $"{node.Line}: {p.Key} {p.Value}\n{log}"));
                Assert.True(cluster.IsRunning(node), $"{node.Line} is not running");
            }
        }
    }

    /// <summary>Ticks the run's checklist once the run waits for it (the minor runbook's changelog comes before the phases that change anything).</summary>
    private static async Task TickWhenWaitingAsync(DashboardProcess dashboard, HttpClient api, string token, string run)
    {
        await Eventually.TrueAsync(async () =>
            (await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{run}")).GetProperty("state").GetString() == "WaitingForChecklist",
            TimeSpan.FromMinutes(3), () => dashboard.Output);
        var tick = await DashboardCli.RunAsync(dashboard.BaseUrl, token, ["runs", "tick", run, "--all", "--note", "read"]);
        Assert.True(tick.ExitCode == 0, tick.Combined);
    }

    public async ValueTask DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }

        // The killed process's connections and leftovers under the data directory: end them too.
        await ProcessRunner.RunAsync("pkill", ["-f", _data], check: false);
        Directory.Delete(_data, recursive: true);
    }
}
