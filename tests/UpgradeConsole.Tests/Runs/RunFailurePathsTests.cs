using System.Text.RegularExpressions;
using Microsoft.Playwright;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// The ways a 2.16 → 2.17.0 run goes wrong, in the browser against the double: a data migration
/// that fails and is retried after the fix, and a rollback after the point of no return.
/// </summary>
public sealed class RunFailurePathsTests(Chromium chromium, SshServer ssh, PostgresServer postgres) : IAsyncLifetime
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
    public async Task DataMigrationFails_OnABlockingUserLetThrough_ThenTheUserIsFixedAndTheConfirmedRetrySucceeds()
    {
        // alice is active and verified but loses her project_dir: update-db-data will stop on her.
        await _fractal.ExecuteAsync("UPDATE user_settings SET project_dir = NULL WHERE id = (SELECT user_settings_id FROM user_oauth WHERE email = 'alice@example.org')");
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await Accounts.SigningInTests.SignInAsync(page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);

        await page.GotoInteractiveAsync($"/targets/{_fractal.TargetId}/preflight");
        await page.ClickAsync("#run-preflight");
        await Assertions.Expect(page.Locator("[data-check='users.blocking']")).ToHaveAttributeAsync("data-status", "Fail");
        await page.GotoInteractiveAsync($"/targets/{_fractal.TargetId}/plan");
        await Assertions.Expect(page.GetByTestId("plan-users")).ToContainTextAsync("1 blocking");
        // Without an override the failing check stops the plan.
        await page.ClickAsync("#create-run");
        await Assertions.Expect(page.GetByTestId("plan-error")).ToContainTextAsync("Every active, verified user has what the backend needs");
        await page.Locator("[id='override-users.blocking']").FillAsync("testing the failure path");
        await page.ClickAsync("#create-run");
        await page.WaitForAddressAsync(new Regex("/runs/[0-9]+$"));
        await page.ConfirmAsync("start");

        await ExpectSettledAsync(page, "Failed");
        await Assertions.Expect(Phase(page, "update-db-data")).ToHaveAttributeAsync("data-state", "Failed");
        await Assertions.Expect(Phase(page, "set-db")).ToHaveAttributeAsync("data-state", "Succeeded");
        await RunLogView.ExpectLineAsync(page, "User alice@example.org is active and verified but their user settings have project_dir=None.");
        await RunLogView.ExpectLineAsync(page, "FAIL (overridden) Every active, verified user has what the backend needs");
        Assert.Equal(0L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM resource"));
        await browser.ScreenshotAsync("run-failed");

        // update-db-data is not safe to run twice: the page asks for "I checked the target" before it sends a retry,
        // and the service refuses a retry without it.
        await page.ClickAsync("#action-retry");
        var dialog = page.Locator(".mud-dialog:has(#dialog-confirm)");
        await Assertions.Expect(dialog.Locator("#action-confirm")).ToBeVisibleAsync();
        await Assertions.Expect(dialog.Locator("#dialog-confirm")).ToBeDisabledAsync();
        await dialog.Locator("#dialog-cancel").ClickAsync();
        var runUrl = page.Url.Split('?', '#')[0];
        var runId = int.Parse(runUrl.Split('/').Last(), System.Globalization.CultureInfo.InvariantCulture);
        var plain = await _app.AsAsync<RunService, RunResult>(UpgradeConsoleApplicationFactory.AdminEmail, (runs, actor) => runs.RetryAsync(runId, false, actor, CancellationToken.None));
        Assert.Contains("not safe to run twice", plain.Error, StringComparison.Ordinal);
        await Assertions.Expect(page.GetByTestId("run-state")).ToHaveTextAsync("Failed");

        // The fix, on the users page, works on the half-migrated schema (set-db dropped user_oauth.username).
        await page.GotoAsync($"/targets/{_fractal.TargetId}/users");
        await page.WaitForInteractiveAsync();
        var alice = UpgradeConsole.Tests.Fractal.FixingUsersBeforeTheUpgradeTests.Row(page, "alice@example.org");
        await alice.GetByTestId("edit-row").ClickAsync();
        await alice.GetByTestId("project-dir-input").FillAsync("/shared/projects/alice");
        await alice.GetByTestId("project-dir-save").ClickAsync();
        await Assertions.Expect(alice.GetByTestId("row-message")).ToHaveTextAsync("project_dir saved.");

        await page.GotoInteractiveAsync(runUrl);
        await page.ConfirmAsync("retry", checkedTheTarget: true);
        await Assertions.Expect(page.GetByTestId("run-state")).Not.ToHaveTextAsync("Failed");
        await ExpectSettledAsync(page, "WaitingForChecklist");
        await Assertions.Expect(Phase(page, "update-db-data")).ToHaveAttributeAsync("data-state", "Succeeded");
        await Assertions.Expect(Phase(page, "update-db-data")).ToContainTextAsync("attempt 2");
        Assert.Equal(1L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM resource"));
        Assert.Equal("/shared/projects/alice", await _fractal.ScalarAsync<string>("SELECT project_dir FROM user_oauth WHERE email = 'alice@example.org'"));
        Assert.Equal(0L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM user_oauth WHERE is_active AND is_verified AND profile_id IS NULL"));

        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Action == "run.plan" && e.Details.Contains("testing the failure path", StringComparison.Ordinal));
        Assert.Contains(events, e => e.Action == "run.retry" && e.Actor == UpgradeConsoleApplicationFactory.AdminEmail);
        Assert.Contains(events, e => e.Action == "run.phase" && e.Details.Contains("\"update-db-data\"", StringComparison.Ordinal) && e.Details.Contains("Failed", StringComparison.Ordinal));
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    [Fact]
    public async Task RollbackAfterThePointOfNoReturn_RestoresTheDatabaseTheEnvFileTheVersionAndTheService()
    {
        var workdir = await _fractal.Host.AbsoluteDirectoryAsync();
        var usersBefore = await _fractal.DumpUserTablesAsync();
        var envBefore = (await ssh.RunAsync($"cat {workdir}/.fractal_server.env")).StandardOutput;
        Assert.Contains("COPY public.user_oauth", usersBefore, StringComparison.Ordinal);

        var operatorPassword = await _app.CreateUserAsync(_admin, "oscar@example.org", "Operator");
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await Accounts.SigningInTests.SignInAsync(page, "oscar@example.org", operatorPassword);
        await page.GotoInteractiveAsync($"/targets/{_fractal.TargetId}/plan");
        await page.ClickAsync("#create-run");
        await page.WaitForAddressAsync(new Regex("/runs/[0-9]+$"));
        await page.ConfirmAsync("start");
        await ExpectSettledAsync(page, "WaitingForChecklist");
        Assert.Equal("83bc2ad3ffcc", await _fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));
        Assert.NotEqual(usersBefore, await _fractal.DumpUserTablesAsync());

        // The manual checks find a problem: roll back, with a reason.
        await page.ConfirmAsync("rollback", reason: "OME-Zarr viewer broken with 2.17");
        await Assertions.Expect(page.GetByTestId("run-state")).Not.ToHaveTextAsync("WaitingForChecklist");
        await ExpectSettledAsync(page, "RolledBack");
        foreach (var key in new[] { "rb-stop", "rb-restore-db", "rb-env", "rb-pip", "rb-start", "rb-verify" })
        {
            await Assertions.Expect(Phase(page, key)).ToHaveAttributeAsync("data-state", "Succeeded");
        }

        await RunLogView.ExpectLineAsync(page, "user tables match the pre-upgrade snapshot");
        await browser.ScreenshotAsync("run-rolled-back");

        Assert.Equal("981d588fe248", await _fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));
        Assert.Equal(usersBefore, await _fractal.DumpUserTablesAsync());
        Assert.Equal(envBefore, (await ssh.RunAsync($"cat {workdir}/.fractal_server.env")).StandardOutput);
        var alive = await ssh.RunAsync($"python3 -c \"import urllib.request;print(urllib.request.urlopen('{_fractal.Host.ServerUrl}/api/alive/').read().decode())\"");
        Assert.Contains("2.16.6", alive.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Version: 2.16.6", (await ssh.RunAsync($"{workdir}/venv/bin/python -m pip show fractal-server")).StandardOutput, StringComparison.Ordinal);

        // The target is free again: a new run may be planned.
        await page.GotoInteractiveAsync($"/targets/{_fractal.TargetId}/plan");
        await page.ClickAsync("#create-run");
        await page.WaitForAddressAsync(new Regex("/runs/[0-9]+$"));
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    [Fact]
    public async Task ADataMigrationKilledOnTheHost_NeedsAttention_AndRunsAgainOnlyWhenAPersonConfirms()
    {
        // update-db-data pauses before it touches anything; the test kills its whole process group
        // on the host meanwhile, as a host-side OOM kill or reboot would: no exit code is ever written.
        await _fractal.Host.WriteFileAsync(".double-pause-update-db-data", "120");
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await Accounts.SigningInTests.SignInAsync(page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await page.GotoInteractiveAsync($"/targets/{_fractal.TargetId}/plan");
        await page.ClickAsync("#create-run");
        await page.WaitForAddressAsync(new Regex("/runs/[0-9]+$"));
        var runId = int.Parse(page.Url.Split('/').Last(), System.Globalization.CultureInfo.InvariantCulture);
        await page.ConfirmAsync("start");
        await RunLogView.ExpectLineAsync(page, "double: pausing 120 s", timeout: 180_000);
        // Exactly this host's update-db-data (its venv path is unique to the test), and its whole process group.
        var fractalctl = $"{await _fractal.Host.AbsoluteDirectoryAsync()}/venv/bin/[f]ractalctl update-db-data";
        var killed = await ssh.RunAsync($$"""
            pids=$(pgrep -f '{{fractalctl}}'); [ "$(echo "$pids" | wc -w)" = 1 ] || { echo "found: $pids" >&2; exit 1; }
            pgid=$(ps -o pgid= -p "$pids" | tr -d ' '); kill -KILL -- "-$pgid"
            """);
        Assert.True(killed.ExitCode == 0, killed.StandardError);

        await ExpectSettledAsync(page, "NeedsAttention");
        await Assertions.Expect(Phase(page, "update-db-data")).ToHaveAttributeAsync("data-state", "NeedsAttention");
        await Assertions.Expect(page.GetByTestId("run-live")).ToContainTextAsync("never re-run automatically");
        Assert.Equal(0L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM resource"));
        await browser.ScreenshotAsync("run-needs-attention");

        // Nothing runs again without a person: the page's dialogs send neither a retry without "I checked the target"
        // nor a "mark done" without a reason, and the service refuses both.
        await page.ClickAsync("#action-retry");
        var dialog = page.Locator(".mud-dialog:has(#dialog-confirm)");
        await Assertions.Expect(dialog.Locator("#dialog-confirm")).ToBeDisabledAsync();
        await dialog.Locator("#dialog-cancel").ClickAsync();
        await page.ClickAsync("#action-mark-done");
        await Assertions.Expect(dialog.Locator("#dialog-confirm")).ToBeDisabledAsync();
        await dialog.Locator("#action-reason").FillAsync("  ");
        await Assertions.Expect(dialog.Locator("#dialog-confirm")).ToBeDisabledAsync();
        await dialog.Locator("#dialog-cancel").ClickAsync();
        var plainRetry = await _app.AsAsync<RunService, RunResult>(UpgradeConsoleApplicationFactory.AdminEmail, (runs, actor) => runs.RetryAsync(runId, false, actor, CancellationToken.None));
        Assert.Contains("confirm", plainRetry.Error, StringComparison.Ordinal);
        var markDone = await _app.AsAsync<RunService, RunResult>(UpgradeConsoleApplicationFactory.AdminEmail, (runs, actor) => runs.MarkDoneAsync(runId, "  ", actor, CancellationToken.None));
        Assert.Contains("reason", markDone.Error, StringComparison.OrdinalIgnoreCase);
        await page.ReloadAsync();
        await page.WaitForInteractiveAsync();
        await Assertions.Expect(page.GetByTestId("run-state")).ToHaveTextAsync("NeedsAttention");

        // The operator checks the host (nothing was written), then confirms the retry.
        await ssh.RunAsync($"rm -f {await _fractal.Host.AbsoluteDirectoryAsync()}/.double-pause-update-db-data");
        await page.ConfirmAsync("retry", checkedTheTarget: true);
        await Assertions.Expect(page.GetByTestId("run-state")).Not.ToHaveTextAsync("NeedsAttention");
        await ExpectSettledAsync(page, "WaitingForChecklist");
        await Assertions.Expect(Phase(page, "update-db-data")).ToContainTextAsync("attempt 2");
        Assert.Equal(1L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM resource"));
        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Action == "run.phase" && e.Details.Contains("NeedsAttention", StringComparison.Ordinal));
        Assert.Contains(events, e => e.Action == "run.retry" && e.Details.Contains("\"confirmed\":true", StringComparison.Ordinal));
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    /// <summary>Waits until the run leaves its transient states; on a different end state, fails with the run's log.</summary>
    private async Task ExpectSettledAsync(IPage page, string expected)
    {
        await Assertions.Expect(page.GetByTestId("run-state")).Not.ToHaveTextAsync(new Regex("^(Planned|Approved|Running|RollingBack)$"), new() { Timeout = 180_000 });
        var state = await page.GetByTestId("run-state").TextContentAsync();
        if (state != expected)
        {
            var runId = page.Url.Split('?', '#')[0].Split('/').Last();
            var log = await (await _admin.GetAsync($"/runs/{runId}/log.txt")).Content.ReadAsStringAsync();
            Assert.Fail($"run {runId} is {state}, expected {expected}\n{await page.GetByTestId("run-live").InnerTextAsync()}\n{log[Math.Max(0, log.Length - 6000)..]}");
        }
    }

    private static ILocator Phase(IPage page, string key) => page.Locator($"[data-testid=run-phase][data-key={key}]");

    public async ValueTask DisposeAsync()
    {
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
