using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Fractal;

/// <summary>Preflight against the Fractal double and its real database: red with reasons and fix links, then green once fixed.</summary>
public sealed class PreflightTests(Chromium chromium, SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private HttpClient _admin = default!;
    private FractalTarget _fractal = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
        _fractal = await FractalTarget.CreateAsync(_app, _admin, ssh, postgres);
    }

    [Fact]
    public async Task Preflight_OnAnUnpreparedTarget_FailsWithReasonsAndFixLinks()
    {
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await SigningInTests.SignInAsync(page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await browser.GotoInteractiveAsync($"/targets/{_fractal.TargetId}/preflight");
        await Assertions.Expect(page.GetByTestId("preflight-none")).ToBeVisibleAsync();
        await page.ClickAsync("#run-preflight");
        await Assertions.Expect(page.GetByTestId("preflight-verdict")).ToContainTextAsync("check(s) fail", new() { Timeout = 60_000 });
        var html = await page.Locator("[data-testid=preflight-results]").InnerHTMLAsync();
        var statuses = System.Text.RegularExpressions.Regex.Matches(html, "data-check=\"([^\"]+)\" data-status=\"([^\"]+)\"")
            .ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);

        Assert.Equal("Fail", statuses["users.blocking"]);
        Assert.Equal("Fail", statuses["users.settings-rows"]);
        Assert.Equal("Fail", statuses["env.tasks-python"]);
        Assert.Equal("Fail", statuses["env.dirs"]);
        Assert.Equal("Fail", statuses["env.slurm-config"]);
        Assert.Equal("Warn", statuses["env.worker-python"]);
        Assert.Equal("Warn", statuses["users.left-out"]);
        foreach (var passing in new[] { "version.installed", "db.alembic", "users.superuser", "users.profile-mismatch", "env.backend", "env.pixi-config", "db.ssh-hosts", "backup.space", "backup.pg_dump", "service.status", "runs.active" })
        {
            Assert.True(statuses[passing] == "Pass", $"{passing} is {statuses[passing]}:\n{html}");
        }

        Assert.Contains($"href=\"/targets/{_fractal.TargetId}/users?filter=blocking\"", html, StringComparison.Ordinal);
        // Grouped by kind, each group with the worst verdict of its checks.
        await Assertions.Expect(page.Locator("[data-testid=check-group][data-group=users]")).ToHaveAttributeAsync("data-status", "Fail");
        await Assertions.Expect(page.Locator("[data-testid=check-group][data-group=backup]")).ToHaveAttributeAsync("data-status", "Pass");
        await Assertions.Expect(page.Locator("[data-check='users.blocking'] [data-testid=status-icon]")).ToHaveAttributeAsync("aria-label", "fail");
        await browser.ScreenshotAsync("preflight-red");
        Assert.Contains("pip and /api/alive/ both report 2.16.6", html, StringComparison.Ordinal);
        Assert.Contains("alembic_version is 981d588fe248", html, StringComparison.Ordinal);

        // Stored, and shown again to whoever opens the page (a Viewer too).
        var viewer = await _app.SignedInClientAsync("Viewer");
        var viewerPage = await viewer.GetStringAsync($"/targets/{_fractal.TargetId}/preflight");
        Assert.Contains("check(s) fail", viewerPage, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"run-preflight\"", viewerPage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Preflight_TurnsGreen_OnceTheUsersAndTheEnvFileAreFixed()
    {
        var workdir = await _fractal.Host.AbsoluteDirectoryAsync();
        var env = await ssh.RunAsync($"cat {workdir}/.fractal_server.env");
        await _fractal.Host.WriteFileAsync(".fractal_server.env", env.StandardOutput + $"""

            FRACTAL_TASKS_DIR=/srv/fractal/tasks
            FRACTAL_RUNNER_WORKING_BASE_DIR=/srv/fractal/jobs
            FRACTAL_SLURM_CONFIG_FILE=slurm_config.json
            FRACTAL_SLURM_WORKER_PYTHON={workdir}/venv/bin/python
            FRACTAL_TASKS_PYTHON_DEFAULT_VERSION="3.11"
            FRACTAL_TASKS_PYTHON_3_11=/usr/bin/python3

            """);
        await _fractal.Host.WriteFileAsync("slurm_config.json", """
            {"default_slurm_config": {"partition": "main", "cpus_per_task": 1, "mem": "100M", "extra_lines": []},
             "gpu_slurm_config": {},
             "batching_config": {"target_cpus_per_job": 1, "max_cpus_per_job": 1, "target_mem_per_job": 200, "max_mem_per_job": 500, "target_num_jobs": 2, "max_num_jobs": 4}}
            """);
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        browser.Page.Dialog += async (_, dialog) => await dialog.AcceptAsync();

        // The admin fixes every blocking and left-out user on the users page.
        var page = browser.Page;
        ILocator Row(string email) => FixingUsersBeforeTheUpgradeTests.Row(page, email);
        async Task SaveAsync(string email, string field, string value, string done)
        {
            // A row's fields are open while it is the row being edited (one at a time).
            if (await Row(email).GetByTestId($"{field}-input").CountAsync() == 0)
            {
                await Row(email).GetByTestId("edit-row").ClickAsync();
            }

            await Row(email).GetByTestId($"{field}-input").FillAsync(value);
            await Row(email).GetByTestId($"{field}-save").ClickAsync();
            await Assertions.Expect(Row(email).GetByTestId("row-message")).ToHaveTextAsync(done);
        }

        await page.GotoAsync($"/targets/{_fractal.TargetId}/users");
        await page.WaitForInteractiveAsync();
        await Row("carol@example.org").GetByTestId("select-user").CheckAsync();
        await Row("dave@example.org").GetByTestId("select-user").CheckAsync();
        await page.ClickAsync("#bulk-activate");
        await Assertions.Expect(page.GetByTestId("bulk-messages")).ToContainTextAsync("dave@example.org: now active and verified");
        await Row("erin@example.org").GetByTestId("create-settings").ClickAsync();
        await Assertions.Expect(Row("erin@example.org").GetByTestId("row-message")).ToHaveTextAsync("Settings row created.");
        foreach (var name in new[] { "bob", "carol", "erin", "ivan" })
        {
            await SaveAsync($"{name}@example.org", "project-dir", $"/shared/projects/{name}", "project_dir saved.");
        }

        foreach (var name in new[] { "carol", "erin", "frank" })
        {
            await SaveAsync($"{name}@example.org", "slurm-user", name, "slurm_user saved.");
        }

        await Assertions.Expect(page.GetByTestId("count-migrated")).ToContainTextAsync("10");
        await browser.GotoInteractiveAsync($"/targets/{_fractal.TargetId}/preflight");
        await browser.Page.ClickAsync("#run-preflight");
        await Assertions.Expect(browser.Page.GetByTestId("preflight-verdict")).ToContainTextAsync("All checks pass", new() { Timeout = 30_000 });
        await Assertions.Expect(browser.Page.Locator("[data-testid=check][data-status=Fail]")).ToHaveCountAsync(0);
        await Assertions.Expect(browser.Page.Locator("[data-testid=check][data-status=Warn]")).ToHaveCountAsync(0);
        await browser.ScreenshotAsync("preflight-green");
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    public async ValueTask DisposeAsync()
    {
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
