using System.Text.RegularExpressions;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// An Operator plans, starts and watches the fractal-server 2.16 → 2.17.0 upgrade of the double in
/// the browser: every phase on the real sshd and PostgreSQL, the checklist, the audit trail.
/// </summary>
public sealed class UpgradingFractalTests(Chromium chromium, SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private FractalTarget _fractal = default!;
    private HttpClient _admin = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
        _fractal = await FractalTarget.CreateAsync(_app, _admin, ssh, postgres);
        await _fractal.PrepareForUpgradeAsync(ssh);
    }

    [Fact]
    public async Task Operator_PlansStartsAndCompletesThe2170Upgrade()
    {
        var operatorPassword = await _app.CreateUserAsync(_admin, "olivia@example.org", "Operator");
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await SigningInTests.SignInAsync(page, "olivia@example.org", operatorPassword);

        await browser.GotoInteractiveAsync($"/targets/{_fractal.TargetId}");
        await page.ClickAsync("#target-plan");
        await Assertions.Expect(page.GetByTestId("plan-versions")).ToHaveTextAsync("2.16.6 → 2.17.0");
        await Assertions.Expect(page.Locator("[data-testid=plan-phase][data-key=set-db] [data-testid=point-of-no-return]")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByTestId("env-diff")).ToContainTextAsync("+ FRACTAL_RUNNER_BACKEND=slurm_sudo");
        await Assertions.Expect(page.GetByTestId("plan-users")).ToHaveTextAsync("10 migrated, 0 left out, 0 blocking");
        Assert.DoesNotContain(FractalTarget.DbPassword, await page.ContentAsync(), StringComparison.Ordinal);
        await browser.ScreenshotAsync("run-plan");

        await page.ClickAsync("#create-run");
        await page.WaitForAddressAsync(new Regex("/runs/[0-9]+$"));
        var runId = int.Parse(page.Url.Split('/').Last(), System.Globalization.CultureInfo.InvariantCulture);
        await Assertions.Expect(page.GetByTestId("run-state")).ToHaveTextAsync("Planned");
        await page.ConfirmAsync("start");

        await Assertions.Expect(page.GetByTestId("run-state")).Not.ToHaveTextAsync(new Regex("^(Planned|Running)$"), new() { Timeout = 180_000 });
        Assert.True(await page.GetByTestId("run-state").TextContentAsync() == "WaitingForChecklist",
            $"{await page.GetByTestId("run-live").InnerTextAsync()}\n{await (await _admin.GetAsync($"/runs/{runId}/log.txt")).Content.ReadAsStringAsync()}");
        await browser.ScreenshotAsync("run-checklist");
        foreach (var key in new[] { "preflight", "env-old", "backup", "stop", "env-write", "verify-files", "pip-install", "set-db", "update-db-data", "start", "post-checks" })
        {
            await Assertions.Expect(page.Locator($"[data-testid=run-phase][data-key={key}]")).ToHaveAttributeAsync("data-state", "Succeeded");
        }

        await Assertions.Expect(page.GetByTestId("backup")).ToContainTextAsync("SHA-256");
        await RunLogView.ExpectLineAsync(page, "END - all ok.");
        Assert.DoesNotContain(FractalTarget.DbPassword, await page.ContentAsync(), StringComparison.Ordinal);

        // The checklist completes the run.
        for (var i = 0; i < 7; i++)
        {
            await Assertions.Expect(page.Locator("[data-testid=checklist-item][data-done=true]")).ToHaveCountAsync(i);
            await page.Locator("[data-testid=checklist-item][data-done=false] [data-testid=tick]").First.ClickAsync();
        }

        await Assertions.Expect(page.GetByTestId("run-state")).ToHaveTextAsync("Succeeded");
        await browser.ScreenshotAsync("run-succeeded");

        // The target really is on 2.17.0.
        Assert.Equal("83bc2ad3ffcc", await _fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));
        Assert.Equal(1L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM resource"));
        Assert.Equal(0L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM user_oauth WHERE profile_id IS NULL"));
        var workdir = await _fractal.Host.AbsoluteDirectoryAsync();
        var env = (await ssh.RunAsync($"cat {workdir}/.fractal_server.env")).StandardOutput;
        Assert.Contains("FRACTAL_RUNNER_BACKEND=slurm_sudo", env, StringComparison.Ordinal);
        Assert.Contains("FRACTAL_DATA_AUTH_SCHEME=viewer-paths", env, StringComparison.Ordinal);
        Assert.Contains("FRACTAL_SLURM_WORKER_PYTHON=", (await ssh.RunAsync($"cat {workdir}/.fractal_server.env.old")).StandardOutput, StringComparison.Ordinal);
        var alive = await ssh.RunAsync($"curl -s {_fractal.Host.ServerUrl}/api/alive/ || python3 -c \"import urllib.request;print(urllib.request.urlopen('{_fractal.Host.ServerUrl}/api/alive/').read().decode())\"");
        Assert.Contains("2.17.0", alive.StandardOutput, StringComparison.Ordinal);

        var log = await (await _admin.GetAsync($"/runs/{runId}/log.txt")).ExpectOkAsync();
        Assert.Contains("Created Profile labshared", log, StringComparison.Ordinal);
        Assert.DoesNotContain(FractalTarget.DbPassword, log, StringComparison.Ordinal);

        // The overview and the runs list tell the same story.
        await page.GotoAsync("/targets");
        var row = page.Locator("[data-testid=target-row]").First;
        await Assertions.Expect(row.GetByTestId("target-installed")).ToHaveTextAsync("2.17.0");
        await Assertions.Expect(row.GetByTestId("target-last-run")).ToContainTextAsync($"#{runId} Succeeded");
        await Assertions.Expect(row.GetByTestId("target-last-preflight")).ToContainTextAsync("passed");
        await page.GotoAsync($"/runs?target={_fractal.TargetId}&state=Succeeded&runbook=fractal-2.16-to-2.17.0");
        await Assertions.Expect(page.Locator($"tr:has([data-testid=run-row-id][data-id='{runId}'])")).ToContainTextAsync("12 / 12");
        await page.GotoAsync("/runs?state=Failed");
        await Assertions.Expect(page.GetByTestId("runs-empty")).ToContainTextAsync("No run matches");
        await page.GotoAsync("/runs?to=2000-01-01");
        await Assertions.Expect(page.GetByTestId("runs-empty")).ToBeVisibleAsync();
        await page.GotoAsync("/runs?state=active");
        await Assertions.Expect(page.GetByTestId("runs-empty")).ToBeVisibleAsync();
        await browser.ScreenshotAsync("runs-list");
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    [Fact]
    public async Task SecondRun_OnATargetWithAnActiveOne_IsRefused()
    {
        var first = await PlanAsync();
        Assert.True(first.Succeeded, $"{first.Error}\n{string.Join("\n", _app.Logs.Lines.Where(l => l.StartsWith("Error", StringComparison.Ordinal) || l.StartsWith("Critical", StringComparison.Ordinal)))}");
        var second = await PlanAsync();
        Assert.False(second.Succeeded);
        Assert.Contains($"Run {first.RunId} is already active", second.Error, StringComparison.Ordinal);
    }

    /// <summary>Plans as the plan page's "Plan this run" does: through the run service, as the Admin.</summary>
    private Task<RunResult> PlanAsync() =>
        _app.AsAsync<RunService, RunResult>(UpgradeConsoleApplicationFactory.AdminEmail,
            (runs, actor) => runs.PlanAsync(_fractal.TargetId, "fractal-2.16-to-2.17.0", null, null, new Dictionary<string, string>(), actor, CancellationToken.None));

    public async ValueTask DisposeAsync()
    {
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
