using System.Text.RegularExpressions;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.BackendAi;

/// <summary>
/// An Admin upgrades a Backend.AI cluster (a manager with the storage proxy, a web server and five agents on the real
/// double) in Chromium: the minor hop 23.09.9 → 23.09.10 planned on the plan page with batches of three hosts, started
/// on the run page, its changelog ticked there, watched to the end with the host grid; then the major hop → 24.03.0,
/// where the plan page offers no batch size (nothing rolls), the downtime announced on the run page, and every host on
/// the new version at the end.
/// </summary>
public sealed class UpgradingABackendAiClusterInTheBrowserTests(Chromium chromium, PostgresServer postgres) : IAsyncLifetime
{
    private BackendAiInTheBrowser _rig = default!;

    public async ValueTask InitializeAsync() => _rig = await BackendAiInTheBrowser.StartAsync(chromium, postgres, agents: 5, version: "23.09.9");

    public async ValueTask DisposeAsync()
    {
        if (_rig is not null)
        {
            await _rig.DisposeAsync();
        }
    }

    [Fact]
    public async Task AMinorThenAMajorHop_PlannedStartedAndWatchedInTheBrowser()
    {
        var page = _rig.Browser.Page;

        // The minor hop, in batches of three of the six hosts besides the manager.
        await PlanAsync("backendai-minor", "23.09.10");
        await Assertions.Expect(page.Locator("[data-testid=plan-phase][data-key=manager-migrate] [data-testid=point-of-no-return]")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("[data-testid=plan-phase][data-key=manager-backup]")).ToBeVisibleAsync();
        await page.FillAsync("#batch-size", "3");
        await StartAndFinishAsync(checklistItems: 2);
        var log = await LogTextAsync();
        Assert.Contains("6 host(s), in rolling batches of 3: ", log, StringComparison.Ordinal);
        var grid = page.GetByTestId("host-grid");
        await Assertions.Expect(grid.Locator("tbody tr")).ToHaveCountAsync(6);
        await Assertions.Expect(grid.Locator("tbody tr[data-state=Succeeded]")).ToHaveCountAsync(6);
        await AssertEveryHostOnAsync("23.09.10", "3d4e5f607182", log);

        // The major hop: nothing rolls, so no batch size; the missing revisions applied with the real command's name.
        await PlanAsync("backendai-major", "24.03.0");
        await Assertions.Expect(page.Locator("#batch-size")).ToHaveCountAsync(0);
        await Assertions.Expect(page.Locator("#failures-allowed")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("[data-testid=plan-phase][data-key=manager-revisions]")).ToContainTextAsync("apply-missing-revisions");
        await StartAndFinishAsync(checklistItems: 2);
        log = await LogTextAsync();
        Assert.Contains("backend.ai mgr schema apply-missing-revisions 23.09.10", log, StringComparison.Ordinal);
        await AssertEveryHostOnAsync("24.03.0", "4e5f60718293", log);
        Assert.DoesNotContain(BackendAiCluster.DbPassword, await page.ContentAsync(), StringComparison.Ordinal);
        Assert.True(_rig.Browser.Problems.Count == 0, string.Join('\n', _rig.Browser.Problems));
    }

    private async Task PlanAsync(string runbook, string to)
    {
        var page = _rig.Browser.Page;
        // The plan page builds the plan its address names (what "Show the plan" navigates to): no race with the
        // prerendered form, whose choices the interactive render would set back while the cluster is looked at.
        await _rig.Browser.GotoInteractiveAsync($"/targets/{_rig.TargetId}/plan?runbook={runbook}&to={Uri.EscapeDataString(to)}");
        await Assertions.Expect(page.GetByTestId("plan-versions")).ToHaveTextAsync(new Regex($"→ {Regex.Escape(to)}$"), new() { Timeout = 120_000 });
        await Assertions.Expect(page.Locator("#runbook")).ToHaveValueAsync(runbook);
    }

    /// <summary>Plans the run shown, starts it on its page, ticks its checklist there when it asks, and waits for Succeeded.</summary>
    private async Task StartAndFinishAsync(int checklistItems)
    {
        var page = _rig.Browser.Page;
        await page.ClickAsync("#create-run");
        await page.WaitForAddressAsync(new Regex("/runs/[0-9]+$"));
        await page.ConfirmAsync("start");
        await Assertions.Expect(page.GetByTestId("run-state")).ToHaveTextAsync("WaitingForChecklist", new() { Timeout = 120_000 });
        for (var i = 0; i < checklistItems; i++)
        {
            await Assertions.Expect(page.Locator("[data-testid=checklist-item][data-done=true]")).ToHaveCountAsync(i);
            await page.Locator("[data-testid=checklist-item][data-done=false] [data-testid=tick]").First.ClickAsync();
        }

        await Assertions.Expect(page.GetByTestId("run-state")).Not.ToHaveTextAsync(new Regex("^(Running|WaitingForChecklist)$"), new() { Timeout = 480_000 });
        Assert.True(await page.GetByTestId("run-state").TextContentAsync() == "Succeeded", await LogTextAsync());
    }

    private async Task<string> LogTextAsync()
    {
        var runId = _rig.Browser.Page.Url.Split('/').Last();
        var response = await _rig.Browser.Page.APIRequest.GetAsync($"{_rig.App.BaseUrl}/runs/{runId}/log.txt");
        return await response.TextAsync();
    }

    private async Task AssertEveryHostOnAsync(string version, string head, string log)
    {
        foreach (var node in _rig.Cluster.Nodes)
        {
            Assert.All(await _rig.Cluster.InstalledAsync(node), p => Assert.True(p.Value == version, $"{node.Line}: {p.Key} {p.Value}\n{log}"));
            Assert.True(_rig.Cluster.IsRunning(node), $"{node.Line} is not running");
        }

        await using var conn = new NpgsqlConnection(_rig.Cluster.DatabaseConnection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT version_num FROM alembic_version", conn);
        Assert.Equal(head, await cmd.ExecuteScalarAsync());
    }
}
