using System.Text.RegularExpressions;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.BackendAi;

/// <summary>
/// An Admin plans a Backend.AI version two hops away on the plan page in Chromium (a cluster on the real double at
/// 23.09.9, asked for 24.03.0): without the chain the plan is refused and names it; with "plan the whole chain" the page
/// lists both hops with their runbooks, the button plans the chain, and the new run's page says which hop it is.
/// </summary>
public sealed class PlanningAChainInTheBrowserTests(Chromium chromium, PostgresServer postgres) : IAsyncLifetime
{
    private BackendAiInTheBrowser _rig = default!;

    public async ValueTask InitializeAsync() => _rig = await BackendAiInTheBrowser.StartAsync(chromium, postgres, agents: 2, version: "23.09.9");

    public async ValueTask DisposeAsync()
    {
        if (_rig is not null)
        {
            await _rig.DisposeAsync();
        }
    }

    [Fact]
    public async Task AVersionTwoHopsAway_IsRefusedAlone_AndPlannedAsAChainOfTwoRuns()
    {
        var page = _rig.Browser.Page;
        await _rig.Browser.GotoInteractiveAsync($"/targets/{_rig.TargetId}/plan?runbook=backendai-minor&to=24.03.0");
        await Assertions.Expect(page.GetByTestId("plan-refused")).ToContainTextAsync("23.09.9 → 23.09.10 (minor), 23.09.10 → 24.03.0 (major)", new() { Timeout = 120_000 });
        await Assertions.Expect(page.GetByTestId("plan-chain")).ToHaveCountAsync(0);

        // The chain asked for: the address carries it, the plan is the first hop's, and every hop is listed with its runbook.
        await page.CheckAsync("#chain");
        await page.ClickAsync("#show-plan");
        await page.WaitForAddressAsync(new Regex("chain=true"));
        await Assertions.Expect(page.GetByTestId("plan-versions")).ToHaveTextAsync(new Regex("→ 23\\.09\\.10$"), new() { Timeout = 120_000 });
        var hops = page.GetByTestId("plan-chain-hop");
        await Assertions.Expect(hops).ToHaveTextAsync(["23.09.9 → 23.09.10 (minor, runbook backendai-minor)", "23.09.10 → 24.03.0 (major, runbook backendai-major)"]);
        await Assertions.Expect(page.Locator("#create-run")).ToHaveTextAsync("Plan the chain of 2 runs");

        await page.ClickAsync("#create-run");
        await page.WaitForAddressAsync(new Regex("/runs/[0-9]+$"));
        await Assertions.Expect(page.GetByTestId("run-chain-hop")).ToHaveTextAsync("This run is hop 1 of 2 of the chain 23.09.9 → 24.03.0.");
        await Assertions.Expect(page.GetByTestId("run-chain-previous")).ToHaveCountAsync(0);
        Assert.Contains(await _rig.App.AuditEventsAsync(), e => e.Action == "run.chain-plan");
        Assert.True(_rig.Browser.Problems.Count == 0, string.Join('\n', _rig.Browser.Problems));
    }
}
