using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.BackendAi;

/// <summary>
/// A minor Backend.AI upgrade rolling over five hosts in batches of two (chosen when planning) on the real double (an sshd,
/// a venv upgraded by real pip and a service per host; the manager's real PostgreSQL). One host's service fails to start:
/// its batch finishes, the rollout stops, and the run page's host grid, the API and the log say which hosts are on which
/// version. The host is mended and retried alone from the grid in Chromium; the phase's retry through the API goes on with
/// the hosts not started yet, where another host fails; that one is retried alone with the CLI's <c>runs retry --host</c>,
/// and the run ends on the new version everywhere, with no host that had succeeded run again.
/// </summary>
public sealed class RetryingOneHostOfARolloutTests(Chromium chromium, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private BackendAiCluster _cluster = default!;
    private HttpClient _api = default!;
    private string _token = "";
    private BrowserSession _browser = default!;
    private int _targetId;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
        _cluster = await BackendAiCluster.CreateAsync(postgres, agents: 4, version: "23.09.9", ownVenvs: true);
        _token = await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "admin", Roles.Admin);
        _api = ApiTokens.Client(_app.BaseUrl, _token);
        _targetId = await BackendAiTarget.AddAsync(_app, _api, _cluster);
        _browser = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(_browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
    }

    public async ValueTask DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.DisposeAsync();
        }

        _api?.Dispose();
        await _app.DisposeAsync();
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }

    [Fact]
    public async Task AFailedHostStopsItsBatch_IsRetriedAloneFromTheGridAndTheCli_AndTheRolloutGoesOn()
    {
        var ct = TestContext.Current.CancellationToken;
        // The five hosts the rolling phase acts on, in their order: the web server and four agents (the manager is upgraded before them).
        var rolling = _cluster.Nodes.Skip(1).ToList();
        Assert.Equal(5, rolling.Count);
        var third = rolling[2];
        var fifth = rolling[4];
        _cluster.Break(third);

        // A batch size beyond the hosts the rollout acts on is refused, and nothing is planned.
        using (var tooBig = await _api.PostAsJsonAsync($"/api/v1/targets/{_targetId}/runs", new { runbook = "backendai-minor", to = "23.09.10", batchSize = 9 }, ct))
        {
            var text = await tooBig.Content.ReadAsStringAsync(ct);
            Assert.True(tooBig.StatusCode == HttpStatusCode.Conflict, text);
            Assert.Contains("The batch size must be between 1 and 5", text, StringComparison.Ordinal);
        }

        using var planned = await _api.PostAsJsonAsync($"/api/v1/targets/{_targetId}/runs", new { runbook = "backendai-minor", to = "23.09.10", batchSize = 2 }, ct);
        var plannedText = await planned.Content.ReadAsStringAsync(ct);
        Assert.True(planned.StatusCode == HttpStatusCode.Created, plannedText);
        var runId = JsonDocument.Parse(plannedText).RootElement.GetProperty("run").GetProperty("id").GetInt32();
        var run = runId.ToString(CultureInfo.InvariantCulture);
        Assert.Contains("\"batchSize\":2", await _api.GetStringAsync($"/api/v1/runs/{run}/plan", ct), StringComparison.Ordinal);
        (await _api.PostAsync($"/api/v1/runs/{run}/start", null, ct)).EnsureSuccessStatusCode();
        await WaitForStateAsync(run, "WaitingForChecklist");
        var tick = await CliAsync(["runs", "tick", run, "--all", "--note", "read"]);
        Assert.True(tick.ExitCode == 0, tick.Combined);

        // Batch 1 (hosts 1, 2) passes; in batch 2 the third host fails and the fourth finishes; batch 3 never starts.
        await WaitForStateAsync(run, "Failed");
        var hosts = await HostsAsync(run, "components");
        Assert.Equal(["Succeeded", "Succeeded", "Failed", "Succeeded", "Pending"], rolling.Select(n => hosts[n.Address].GetProperty("state").GetString()));
        Assert.Contains("exited with 1", hosts[third.Address].GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("23.09.9", (await _cluster.InstalledAsync(fifth)).Values.Single());
        Assert.Equal("23.09.10", (await _cluster.InstalledAsync(rolling[3])).Values.Single());
        var log = await _api.GetStringAsync($"/api/v1/runs/{run}/log", ct);
        Assert.Contains($"5 host(s), in rolling batches of 2: ", log, StringComparison.Ordinal);
        Assert.Contains($"Hosts on 23.09.10: {rolling[0].Address}, {rolling[1].Address}, {rolling[3].Address}; still on 23.09.9 (not started): {fifth.Address}; failed mid-way", log, StringComparison.Ordinal);
        Assert.Contains($"[{third.Address}] the service failed to start (see its journal)", log, StringComparison.Ordinal);
        var firstHostLines = Lines(log, rolling[0].Address);
        Assert.NotEmpty(firstHostLines);

        // A host that is not failed, or not of the phase, is not retried alone.
        await AssertRetryRefusedAsync(run, rolling[0].Address, "only a failed or unreachable host is retried alone");
        await AssertRetryRefusedAsync(run, "10.9.9.9:22", "is not a host of the phase");

        // The grid: the stopped phase's hosts, filtered to the failed one, retried alone after it was mended.
        var page = _browser.Page;
        await _browser.GotoInteractiveAsync($"/runs/{run}");
        var grid = page.GetByTestId("host-grid");
        await Assertions.Expect(grid.Locator("tbody tr")).ToHaveCountAsync(5);
        await page.Locator("#hosts-filter-failed").ClickAsync();
        await Assertions.Expect(grid.Locator("tbody tr")).ToHaveCountAsync(1);
        var row = grid.Locator($"tr[data-host='{third.Address}']");
        await Assertions.Expect(row.GetByTestId("host-state")).ToHaveTextAsync("Failed");
        var ownLog = await page.APIRequest.GetAsync($"{_app.BaseUrl}/runs/{run}/log.txt?host={Uri.EscapeDataString(third.Address)}");
        var ownLines = (await ownLog.TextAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(ownLines);
        Assert.All(ownLines, l => Assert.StartsWith($"[{third.Address}] ", l, StringComparison.Ordinal));

        _cluster.Mend(third);
        await row.GetByTestId("retry-host").ClickAsync();
        await Assertions.Expect(page.GetByTestId("dialog-message")).ToContainTextAsync($"on {third.Address} alone");
        await page.Locator("#dialog-confirm").ClickAsync();
        await page.Locator("#hosts-filter-all").ClickAsync();
        await Assertions.Expect(grid.Locator($"tr[data-host='{third.Address}'] [data-testid=host-state]")).ToHaveTextAsync("Succeeded", new() { Timeout = 120_000 });
        await WaitForStateAsync(run, "Failed");
        var afterHost = await RunAsync(run);
        Assert.Contains("1 host(s) not started yet: retry the phase to go on with the rollout", PhaseMessage(afterHost, "components"), StringComparison.Ordinal);
        Assert.Equal(2, (await HostsAsync(run, "components"))[third.Address].GetProperty("attempt").GetInt32());
        Assert.Equal("Pending", (await HostsAsync(run, "components"))[fifth.Address].GetProperty("state").GetString());
        var audit = await _api.GetFromJsonAsync<JsonElement>("/api/v1/audit?action=run.retry-host", ct);
        Assert.Contains(third.Address, audit.GetRawText(), StringComparison.Ordinal);

        // The whole phase again through the API: the last batch runs, where the fifth host now fails.
        _cluster.Break(fifth);
        using (var retried = await _api.PostAsJsonAsync($"/api/v1/runs/{run}/retry", new { }, ct))
        {
            Assert.True(retried.IsSuccessStatusCode, await retried.Content.ReadAsStringAsync(ct));
        }

        await WaitForStateAsync(run, "Failed");
        Assert.Equal("Failed", (await HostsAsync(run, "components"))[fifth.Address].GetProperty("state").GetString());

        // Mended, the fifth host retried alone with the CLI: every host is done, so the phase is, and the run ends.
        _cluster.Mend(fifth);
        var cli = await CliAsync(["runs", "retry", run, "--host", fifth.Address, "--wait"]);
        log = await _api.GetStringAsync($"/api/v1/runs/{run}/log", ct);
        Assert.True(cli.ExitCode == 0, cli.Combined + "\n" + log);
        Assert.Equal("Succeeded", (await RunAsync(run)).GetProperty("state").GetString());
        foreach (var node in _cluster.Nodes)
        {
            Assert.All(await _cluster.InstalledAsync(node), p => Assert.True(p.Value == "23.09.10", $"{node.Line}: {p.Key} {p.Value}"));
            Assert.True(_cluster.IsRunning(node), $"{node.Line} is not running");
        }

        // No host that had succeeded ran again: the first host's lines are the ones it had after the first failure.
        Assert.Equal(firstHostLines, Lines(log, rolling[0].Address));
        var hostsCli = await CliAsync(["runs", "hosts", run, "--state", "failed"]);
        Assert.True(hostsCli.ExitCode == 0, hostsCli.Combined);
        Assert.Equal("", hostsCli.StandardOutput.Trim());
        Assert.Empty(_browser.Problems);
    }

    private static List<string> Lines(string log, string host) => [.. log.Split('\n').Where(l => l.StartsWith($"[{host}] ", StringComparison.Ordinal))];

    private async Task AssertRetryRefusedAsync(string run, string host, string why)
    {
        using var refused = await _api.PostAsJsonAsync($"/api/v1/runs/{run}/retry", new { host }, TestContext.Current.CancellationToken);
        var text = await refused.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(refused.StatusCode == HttpStatusCode.Conflict, text);
        Assert.Contains(why, text, StringComparison.Ordinal);
    }

    private async Task<Dictionary<string, JsonElement>> HostsAsync(string run, string phase)
    {
        var rows = await _api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{run}/hosts", TestContext.Current.CancellationToken);
        return rows.EnumerateArray().Where(r => r.GetProperty("phase").GetString() == phase).ToDictionary(r => r.GetProperty("host").GetString()!, r => r.Clone());
    }

    private Task<JsonElement> RunAsync(string run) => _api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{run}", TestContext.Current.CancellationToken);

    private static string PhaseMessage(JsonElement run, string key) =>
        run.GetProperty("phases").EnumerateArray().Single(p => p.GetProperty("key").GetString() == key).GetProperty("message").GetString() ?? "";

    private Task WaitForStateAsync(string run, string state) =>
        Eventually.TrueAsync(async () => (await RunAsync(run)).GetProperty("state").GetString() == state, TimeSpan.FromMinutes(4));

    private Task<ProcessRunner.Result> CliAsync(string[] args) => DashboardCli.RunAsync(_app.BaseUrl, _token, args);
}
