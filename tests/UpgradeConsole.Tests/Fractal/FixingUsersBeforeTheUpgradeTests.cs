using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Fractal;

namespace UpgradeConsole.Tests.Fractal;

/// <summary>
/// An admin opens the users page of a 2.16 target (real PostgreSQL loaded with the project's 2.16
/// fixture, reached through an SSH forward), sees who blocks the upgrade and who would lose access,
/// and fixes them in the browser (an interactive MudBlazor grid); the database and the audit history
/// show each change.
/// </summary>
public sealed class FixingUsersBeforeTheUpgradeTests(Chromium chromium, SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    // The circuit's own re-check (every 30 s) is pushed out of the way: a demotion must be refused by the service itself.
    private readonly UpgradeConsoleApplicationFactory _app = new UpgradeConsoleApplicationFactory()
        .WithSetting("UpgradeConsole:CircuitRevalidationInterval", "01:00:00");

    private FractalTarget _fractal = default!;
    private BrowserSession _browser = default!;
    private HttpClient _admin = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
        _fractal = await FractalTarget.CreateAsync(_app, _admin, ssh, postgres);
        _browser = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(_browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
    }

    private IPage Page => _browser.Page;

    private string UsersPath => $"/targets/{_fractal.TargetId}/users";

    /// <summary>The grid row of one user (its id cell carries the e-mail).</summary>
    private ILocator Row(string email) => Row(Page, email);

    internal static ILocator Row(IPage page, string email) =>
        page.Locator("tr").Filter(new() { Has = page.Locator($"[data-testid=fractal-user][data-email='{email}']") });

    private static ILocator Outcome(ILocator row) => row.GetByTestId("outcome");

    /// <summary>Opens the users page and waits for its circuit and for the grid's first page.</summary>
    private async Task OpenAsync(string? query = null, IPage? page = null)
    {
        page ??= Page;
        await page.GotoAsync(UsersPath + query);
        await page.WaitForInteractiveAsync();
        await Assertions.Expect(page.GetByTestId("users-count")).ToContainTextAsync("user(s)");
    }

    [Fact]
    public async Task UsersPage_ShowsWhat2170WillDoWithEachUser()
    {
        await OpenAsync();
        await Assertions.Expect(Page.GetByTestId("count-blocking")).ToContainTextAsync("4");
        await Assertions.Expect(Page.GetByTestId("count-left-out")).ToContainTextAsync("2");
        await Assertions.Expect(Page.GetByTestId("count-migrated")).ToContainTextAsync("4");
        await Assertions.Expect(Page.GetByTestId("count-all")).ToContainTextAsync("10");
        // The target's own backend, read from its env file, and what 2.17 makes of it.
        await Assertions.Expect(Page.GetByTestId("users-backend")).ToHaveTextAsync("Backend slurm → 2.17 resource type slurm_sudo");

        var expected = new Dictionary<string, (string Outcome, string Reason)>
        {
            ["admin@fractal.xy"] = ("Migrated", "Profile fractal-admin"),
            ["alice@example.org"] = ("Migrated", "Profile alice"),
            ["bob@example.org"] = ("Blocks", "project_dir is not set"),
            ["carol@example.org"] = ("LeftOut", "not verified"),
            ["dave@example.org"] = ("LeftOut", "not active"),
            ["erin@example.org"] = ("Blocks", "no settings row"),
            ["frank@example.org"] = ("Blocks", "no slurm_user"),
            ["gina@example.org"] = ("Migrated", "Profile labshared"),
            ["hank@example.org"] = ("Migrated", "Profile labshared"),
            ["ivan@example.org"] = ("Blocks", "not an absolute path"),
        };
        foreach (var (email, (outcome, reason)) in expected)
        {
            await Assertions.Expect(Outcome(Row(email))).ToHaveAttributeAsync("data-outcome", outcome);
            await Assertions.Expect(Row(email).GetByTestId("reasons")).ToContainTextAsync(reason);
        }

        await Assertions.Expect(Outcome(Row("bob@example.org"))).ToHaveTextAsync("Blocks the upgrade");
        await Assertions.Expect(Outcome(Row("carol@example.org"))).ToHaveTextAsync("Left out: will lose access");
        await Assertions.Expect(Row("alice@example.org")).ToContainTextAsync("All, lab-a");
        // The flags say what they show (dave is not active; carol not verified; admin a superuser), and their icons
        // are drawn: a Material icon as a mask, 20 px square, in the text's colour (green when set).
        await Assertions.Expect(Row("dave@example.org").GetByRole(AriaRole.Img, new() { Name = "not active", Exact = true })).ToBeVisibleAsync();
        await Assertions.Expect(Row("carol@example.org").GetByRole(AriaRole.Img, new() { Name = "not verified", Exact = true })).ToBeVisibleAsync();
        var superuser = Row("admin@fractal.xy").GetByRole(AriaRole.Img, new() { Name = "superuser", Exact = true });
        await Assertions.Expect(superuser).ToHaveAttributeAsync("title", "superuser");
        var drawn = await superuser.EvaluateAsync<string[]>("e => { const s = getComputedStyle(e); return [s.maskImage || s.webkitMaskImage, s.width, s.backgroundColor]; }");
        Assert.StartsWith("url(\"data:image/svg+xml,", drawn[0], StringComparison.Ordinal);
        Assert.Equal("20px", drawn[1]);
        Assert.NotEqual("rgba(0, 0, 0, 0)", drawn[2]);
        await _browser.ScreenshotAsync("fractal-users");
        // The database password never reaches the page.
        Assert.DoesNotContain(FractalTarget.DbPassword, await Page.ContentAsync(), StringComparison.Ordinal);
        Assert.True(_browser.Problems.Count == 0, string.Join('\n', _browser.Problems));

        // The same page in the dark theme, for the screenshots.
        await using var dark = await chromium.NewSessionAsync(_app.BaseUrl, "dark");
        await SigningInTests.SignInAsync(dark.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await OpenAsync(page: dark.Page);
        await Assertions.Expect(dark.Page.Locator("#uc-app")).ToHaveAttributeAsync("data-theme", "dark");
        await Assertions.Expect(Outcome(Row(dark.Page, "bob@example.org"))).ToHaveAttributeAsync("data-outcome", "Blocks");
        await dark.ScreenshotAsync("fractal-users-dark");
        Assert.True(dark.Problems.Count == 0, string.Join('\n', dark.Problems));
    }

    [Fact]
    public async Task FirstResponse_AlreadyHoldsTheFirstPageOfRows_FilteredAsTheAddressSays()
    {
        // Rendered on the server with the rows (not an empty grid that fills in once the circuit is up).
        var html = await (await _admin.GetAsync(UsersPath + "?filter=blocking")).ExpectOkAsync();
        Assert.Contains("data-email=\"bob@example.org\"", html, StringComparison.Ordinal);
        Assert.Contains("data-email=\"erin@example.org\"", html, StringComparison.Ordinal);
        Assert.DoesNotContain("data-email=\"alice@example.org\"", html, StringComparison.Ordinal);
        Assert.Contains("4 user(s), page 1 of 1", html, StringComparison.Ordinal);
        Assert.Contains("data-outcome=\"Blocks\"", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheCircuitTakesOverThePrerenderedRows_WithoutEmptyingTheGrid()
    {
        await using var session = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(session.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        // Counts every moment the grid had rows and then none, from the parsed document on (a circuit whose first
        // render had an empty grid would replace the prerendered rows with none for a moment).
        await session.Page.AddInitScriptAsync("""
            (() => {
              let seen = false;
              window.ucRowsEmptied = 0;
              const check = () => {
                const rows = document.querySelectorAll('[data-testid=fractal-user]').length;
                if (rows > 0) { seen = true; } else if (seen) { window.ucRowsEmptied++; seen = false; }
              };
              new MutationObserver(check).observe(document, { subtree: true, childList: true });
              document.addEventListener('DOMContentLoaded', check);
            })();
            """);
        await OpenAsync(page: session.Page);
        // A sort is answered after the grid's own first load (the circuit handles events in order).
        await session.Page.Locator("#sort-email").ClickAsync();
        await Assertions.Expect(session.Page.Locator("[data-testid=fractal-user]").First).ToHaveAttributeAsync("data-email", "admin@fractal.xy");
        await session.Page.Locator("#sort-email").ClickAsync();
        await Assertions.Expect(session.Page.Locator("[data-testid=fractal-user]").First).ToHaveAttributeAsync("data-email", "ivan@example.org");
        Assert.Equal(0, await session.Page.EvaluateAsync<int>("() => window.ucRowsEmptied"));
    }

    [Fact]
    public async Task InlineFixes_TurnBlockingUsersIntoMigrated_AndAreAudited()
    {
        await OpenAsync();

        // bob: set project_dir.
        await Row("bob@example.org").GetByTestId("edit-row").ClickAsync();
        await Row("bob@example.org").GetByTestId("project-dir-input").FillAsync("/shared/projects/bob");
        await Row("bob@example.org").GetByTestId("project-dir-save").ClickAsync();
        await Assertions.Expect(Row("bob@example.org").GetByTestId("row-message")).ToHaveTextAsync("project_dir saved.");
        await Assertions.Expect(Outcome(Row("bob@example.org"))).ToHaveAttributeAsync("data-outcome", "Migrated");
        // The counts follow each fix without a reload.
        await Assertions.Expect(Page.GetByTestId("count-migrated")).ToContainTextAsync("5");

        // frank: set slurm_user.
        await Row("frank@example.org").GetByTestId("edit-row").ClickAsync();
        // One row holds the editor at a time: bob's closed, showing what was saved.
        await Assertions.Expect(Page.GetByTestId("row-editor")).ToHaveCountAsync(1);
        await Assertions.Expect(Row("bob@example.org").GetByTestId("project-dir")).ToHaveTextAsync("/shared/projects/bob");
        await Row("frank@example.org").GetByTestId("slurm-user-input").FillAsync("frank");
        await _browser.ScreenshotAsync("fractal-users-editing");
        await Row("frank@example.org").GetByTestId("slurm-user-save").ClickAsync();
        await Assertions.Expect(Outcome(Row("frank@example.org"))).ToHaveAttributeAsync("data-outcome", "Migrated");
        await Row("frank@example.org").GetByTestId("edit-done").ClickAsync();
        await Assertions.Expect(Page.GetByTestId("row-editor")).ToHaveCountAsync(0);
        await Assertions.Expect(Row("frank@example.org").GetByTestId("slurm-user")).ToHaveTextAsync("frank");

        // erin: create the settings row, then fill it.
        await Row("erin@example.org").GetByTestId("create-settings").ClickAsync();
        await Assertions.Expect(Row("erin@example.org").GetByTestId("row-message")).ToHaveTextAsync("Settings row created.");
        await Assertions.Expect(Row("erin@example.org").GetByTestId("reasons")).ToContainTextAsync("project_dir is not set");
        await Row("erin@example.org").GetByTestId("edit-row").ClickAsync();
        await Row("erin@example.org").GetByTestId("project-dir-input").FillAsync("/shared/projects/erin");
        await Row("erin@example.org").GetByTestId("project-dir-save").ClickAsync();
        await Assertions.Expect(Row("erin@example.org").GetByTestId("row-message")).ToHaveTextAsync("project_dir saved.");
        await Assertions.Expect(Row("erin@example.org").GetByTestId("reasons")).ToHaveTextAsync("has no slurm_user (the SLURM account jobs run as)");
        await Row("erin@example.org").GetByTestId("slurm-user-input").FillAsync("erin");
        await Row("erin@example.org").GetByTestId("slurm-user-save").ClickAsync();
        await Assertions.Expect(Row("erin@example.org").GetByTestId("row-message")).ToHaveTextAsync("slurm_user saved.");
        await Assertions.Expect(Outcome(Row("erin@example.org"))).ToHaveAttributeAsync("data-outcome", "Migrated");

        // carol: select, mark active and verified; then she needs her own settings.
        await Row("carol@example.org").GetByTestId("select-user").CheckAsync();
        await Page.ClickAsync("#bulk-activate");
        await Assertions.Expect(Page.GetByTestId("bulk-messages")).ToContainTextAsync("carol@example.org: now active and verified");
        await Assertions.Expect(Outcome(Row("carol@example.org"))).ToHaveAttributeAsync("data-outcome", "Blocks");

        // The counts follow without a reload.
        await Assertions.Expect(Page.GetByTestId("count-migrated")).ToContainTextAsync("7");
        await _browser.ScreenshotAsync("fractal-users-fixed");

        Assert.Equal("/shared/projects/bob", await _fractal.ScalarAsync<string>("SELECT s.project_dir FROM user_oauth u JOIN user_settings s ON s.id = u.user_settings_id WHERE u.email = 'bob@example.org'"));
        Assert.Equal("erin", await _fractal.ScalarAsync<string>("SELECT s.slurm_user FROM user_oauth u JOIN user_settings s ON s.id = u.user_settings_id WHERE u.email = 'erin@example.org'"));
        Assert.True(await _fractal.ScalarAsync<bool>("SELECT is_verified FROM user_oauth WHERE email = 'carol@example.org'"));

        var audit = await AuditDetailsAsync("fractal.user.project-dir");
        Assert.Contains(audit, d => d.Contains("\"projectDir\":null", StringComparison.Ordinal) && d.Contains("/shared/projects/bob", StringComparison.Ordinal));
        Assert.Single(await AuditDetailsAsync("fractal.user.activate"));
        Assert.Single(await AuditDetailsAsync("fractal.user.settings-row"));
        Assert.True(_browser.Problems.Count == 0, string.Join('\n', _browser.Problems));
    }

    [Fact]
    public async Task BulkActivate_CanBeUndone_AndDeactivatingAsksFirst()
    {
        await OpenAsync();
        await Row("carol@example.org").GetByTestId("select-user").CheckAsync();
        await Row("dave@example.org").GetByTestId("select-user").CheckAsync();
        await Assertions.Expect(Page.GetByTestId("selected-count")).ToHaveTextAsync("2 selected");
        await Page.ClickAsync("#bulk-activate");
        await Assertions.Expect(Page.GetByTestId("bulk-messages")).ToContainTextAsync("dave@example.org: now active and verified");
        await Assertions.Expect(Page.GetByTestId("count-left-out")).ToContainTextAsync("0");
        Assert.Equal(2L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM user_oauth WHERE email IN ('carol@example.org', 'dave@example.org') AND is_active AND is_verified"));

        // Undo puts both back as they were left by the undo: not active, not verified (audited as such).
        await Page.GetByTestId("bulk-undo").ClickAsync();
        await Assertions.Expect(Page.GetByTestId("bulk-messages")).ToContainTextAsync("carol@example.org: now not active and not verified");
        await Assertions.Expect(Page.GetByTestId("count-left-out")).ToContainTextAsync("2");
        await Assertions.Expect(Page.GetByTestId("bulk-undo")).ToHaveCountAsync(0);
        Assert.Equal(0L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM user_oauth WHERE email IN ('carol@example.org', 'dave@example.org') AND (is_active OR is_verified)"));
        Assert.Equal(2, (await AuditDetailsAsync("fractal.user.deactivate")).Count);

        // Marking users not active asks first; cancelling changes nothing.
        await Row("alice@example.org").GetByTestId("select-user").CheckAsync();
        await Page.ClickAsync("#bulk-deactivate");
        var dialog = Page.Locator(".mud-dialog");
        await Assertions.Expect(dialog).ToContainTextAsync("left out of the migration");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Cancel", Exact = true }).ClickAsync();
        await Assertions.Expect(dialog).ToHaveCountAsync(0);
        Assert.True(await _fractal.ScalarAsync<bool>("SELECT is_active FROM user_oauth WHERE email = 'alice@example.org'"));

        await Page.ClickAsync("#bulk-deactivate");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Mark not active", Exact = true }).ClickAsync();
        await Assertions.Expect(Outcome(Row("alice@example.org"))).ToHaveAttributeAsync("data-outcome", "LeftOut");
        Assert.False(await _fractal.ScalarAsync<bool>("SELECT is_active FROM user_oauth WHERE email = 'alice@example.org'"));
    }

    [Theory]
    [InlineData("/tmp/$(touch /tmp/uc-pwned)")]
    [InlineData("/tmp/a;rm -rf /")]
    [InlineData("/tmp/`id`")]
    [InlineData("relative/dir")]
    [InlineData("   ")]
    public async Task ProjectDir_LikeShellInjectionOrRelative_IsRefused(string value)
    {
        await OpenAsync();
        await Row("bob@example.org").GetByTestId("edit-row").ClickAsync();
        await Row("bob@example.org").GetByTestId("project-dir-input").FillAsync(value);
        await Row("bob@example.org").GetByTestId("project-dir-save").ClickAsync();
        await Assertions.Expect(Row("bob@example.org").GetByTestId("row-error")).ToContainTextAsync("project_dir");
        Assert.Equal(0L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM user_oauth u JOIN user_settings s ON s.id = u.user_settings_id WHERE u.email = 'bob@example.org' AND s.project_dir IS NOT NULL"));
    }

    [Fact]
    public async Task RowChangedSinceShown_IsRefused_AndShowsTheCurrentValues()
    {
        await OpenAsync();
        // Someone else (Fractal's own admin page, say) sets bob's project_dir meanwhile.
        await _fractal.ExecuteAsync("UPDATE user_settings SET project_dir = '/elsewhere/bob' WHERE id = 3");

        await Row("bob@example.org").GetByTestId("edit-row").ClickAsync();
        await Row("bob@example.org").GetByTestId("project-dir-input").FillAsync("/shared/projects/bob");
        await Row("bob@example.org").GetByTestId("project-dir-save").ClickAsync();
        await Assertions.Expect(Row("bob@example.org").GetByTestId("row-error")).ToContainTextAsync("Someone changed this user");
        await Assertions.Expect(Row("bob@example.org").GetByTestId("project-dir-input")).ToHaveValueAsync("/elsewhere/bob");
        Assert.Equal("/elsewhere/bob", await _fractal.ScalarAsync<string>("SELECT project_dir FROM user_settings WHERE id = 3"));
        Assert.Contains(await AuditDetailsAsync("fractal.user.project-dir"), d => d.Contains("\"conflict\":true", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TwoAdminsEditingTheSameUser_TheSecondIsRefused_WithTheFirstOnesValue()
    {
        await OpenAsync();
        await using var other = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(other.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await OpenAsync(page: other.Page);

        await Row(other.Page, "ivan@example.org").GetByTestId("edit-row").ClickAsync();
        await Row(other.Page, "ivan@example.org").GetByTestId("project-dir-input").FillAsync("/shared/projects/ivan-first");
        await Row(other.Page, "ivan@example.org").GetByTestId("project-dir-save").ClickAsync();
        await Assertions.Expect(Row(other.Page, "ivan@example.org").GetByTestId("row-message")).ToHaveTextAsync("project_dir saved.");

        await Row("ivan@example.org").GetByTestId("edit-row").ClickAsync();
        await Row("ivan@example.org").GetByTestId("project-dir-input").FillAsync("/shared/projects/ivan-second");
        await Row("ivan@example.org").GetByTestId("project-dir-save").ClickAsync();
        await Assertions.Expect(Row("ivan@example.org").GetByTestId("row-error")).ToContainTextAsync("Someone changed this user");
        await Assertions.Expect(Row("ivan@example.org").GetByTestId("project-dir-input")).ToHaveValueAsync("/shared/projects/ivan-first");
        Assert.Equal("/shared/projects/ivan-first", await _fractal.ScalarAsync<string>("SELECT project_dir FROM user_settings WHERE id = 9"));
    }

    [Fact]
    public async Task Pattern_PreviewsEveryValue_ThenAppliesOnlyValidOnes()
    {
        await OpenAsync();
        await Page.ClickAsync("#open-pattern");
        var dialog = Page.Locator(".mud-dialog");
        await dialog.Locator("#pattern").FillAsync("/shared/projects/{email_local}");
        await dialog.Locator("#preview-pattern").ClickAsync();
        var preview = dialog.GetByTestId("pattern-preview");
        await Assertions.Expect(preview.Locator("[data-testid=proposal][data-email='bob@example.org']")).ToContainTextAsync("/shared/projects/bob");
        await Assertions.Expect(preview.Locator("[data-testid=proposal][data-email='ivan@example.org']")).ToContainTextAsync("/shared/projects/ivan");
        await Assertions.Expect(preview.Locator("[data-testid=proposal][data-email='erin@example.org']")).ToContainTextAsync("no settings row");
        // Users whose project_dir is fine are not touched.
        await Assertions.Expect(preview.Locator("[data-testid=proposal][data-email='alice@example.org']")).ToHaveCountAsync(0);
        await Assertions.Expect(dialog.Locator("#apply-pattern")).ToContainTextAsync("Apply 2 change(s)");
        await _browser.ScreenshotAsync("fractal-pattern-preview");

        await dialog.Locator("#apply-pattern").ClickAsync();
        await Assertions.Expect(Page.GetByTestId("bulk-messages")).ToContainTextAsync("ivan@example.org: project_dir set to /shared/projects/ivan");
        await Assertions.Expect(Outcome(Row("ivan@example.org"))).ToHaveAttributeAsync("data-outcome", "Migrated");
        Assert.Equal("/shared/projects/ivan", await _fractal.ScalarAsync<string>("SELECT project_dir FROM user_settings WHERE id = 9"));
        Assert.Equal("/shared/projects/alice", await _fractal.ScalarAsync<string>("SELECT project_dir FROM user_settings WHERE id = 2"));
    }

    [Fact]
    public async Task CheckOnHost_TellsWhetherTheDirectoryExists()
    {
        var dir = $"/tmp/uc-project-{Guid.NewGuid():N}";
        await ssh.RunAsync($"mkdir -p {dir}");
        await _fractal.ExecuteAsync($"UPDATE user_settings SET project_dir = '{dir}' WHERE id = 3");
        await OpenAsync();
        await Row("bob@example.org").GetByTestId("check-dir").ClickAsync();
        await Assertions.Expect(Row("bob@example.org").GetByTestId("check-text")).ToContainTextAsync($"{dir} exists");
        await Row("alice@example.org").GetByTestId("check-dir").ClickAsync();
        await Assertions.Expect(Row("alice@example.org").GetByTestId("check-text")).ToContainTextAsync("does not exist");
    }

    [Fact]
    public async Task PostgresHostAsASocketDirectory_IsForwardedToTheSocket()
    {
        var workdir = await _fractal.Host.AbsoluteDirectoryAsync();
        var env = (await ssh.RunAsync($"cat {workdir}/.fractal_server.env")).StandardOutput;
        await _fractal.Host.WriteFileAsync(".fractal_server.env", env.Replace("POSTGRES_HOST=127.0.0.1", $"POSTGRES_HOST={postgres.SocketDir}", StringComparison.Ordinal));
        using var api = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "socket", "Viewer"));

        // The dashboard keeps no idle connection, so catch it in the act: a lock held here makes its
        // query wait, and PostgreSQL shows the waiting session without a client address (a Unix socket).
        await using var held = await TableLock.HoldAsync(_fractal.DatabaseConnection, "user_oauth", "ACCESS EXCLUSIVE");

        var request = api.GetAsync($"/api/v1/targets/{_fractal.TargetId}/fractal/users");
        long viaSocket = 0;
        await Eventually.TrueAsync(async () => (viaSocket = await _fractal.ScalarAsync<long>(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'UpgradeConsole' AND client_addr IS NULL AND datname = current_database() AND wait_event_type = 'Lock'")) > 0,
            TimeSpan.FromSeconds(10));

        await held.ReleaseAsync();
        var body = await (await request).ExpectOkAsync();
        Assert.Contains("bob@example.org", body, StringComparison.Ordinal);
        Assert.Equal(1, viaSocket);
    }

    [Fact]
    public async Task ViewerSeesTheUsers_ButCannotChangeThem()
    {
        const string viewerEmail = "vic@example.org";
        var password = await _app.CreateUserAsync(_admin, viewerEmail, "Viewer");
        await using var viewer = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(viewer.Page, viewerEmail, password);
        await OpenAsync(page: viewer.Page);
        await Assertions.Expect(Row(viewer.Page, "bob@example.org")).ToBeVisibleAsync();
        await Assertions.Expect(Outcome(Row(viewer.Page, "bob@example.org"))).ToHaveAttributeAsync("data-outcome", "Blocks");
        await Assertions.Expect(viewer.Page.GetByTestId("edit-row")).ToHaveCountAsync(0);
        await Assertions.Expect(viewer.Page.GetByTestId("check-dir")).ToHaveCountAsync(0);
        await Assertions.Expect(Row(viewer.Page, "alice@example.org").GetByTestId("project-dir")).ToHaveTextAsync("/shared/projects/alice");
        await Assertions.Expect(viewer.Page.GetByTestId("select-user")).ToHaveCountAsync(0);
        await Assertions.Expect(viewer.Page.Locator("#bulk-activate")).ToHaveCountAsync(0);
        await Assertions.Expect(viewer.Page.Locator("#open-pattern")).ToHaveCountAsync(0);

        // Without the buttons, the service still refuses a Viewer (the page's markup is not the guard).
        var version = (await _app.AsAsync<FractalUsersService, UsersSlice>(viewerEmail, (s, p) => s.PageAsync(_fractal.TargetId, new UsersQuery(Search: "bob@"), p, CancellationToken.None))).Items.Single().User.Version;
        var refused = await Assert.ThrowsAsync<AccessDeniedException>(() =>
            _app.AsAsync<FractalUsersService, UserChange>(viewerEmail, (s, p) => s.SetProjectDirAsync(_fractal.TargetId, 3, version, "/shared/x", p, CancellationToken.None)));
        Assert.Contains("Viewer", refused.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<AccessDeniedException>(() =>
            _app.AsAsync<FractalUsersService, string>(viewerEmail, (s, p) => s.CheckOnHostAsync(_fractal.TargetId, 2, p, CancellationToken.None)));
        Assert.Equal(0L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM user_settings WHERE project_dir = '/shared/x'"));
    }

    [Fact]
    public async Task AnOperatorDemotedWhileTheUsersPageIsOpen_IsRefused_AndNothingChanges()
    {
        var password = await _app.CreateUserAsync(_admin, "olga@example.org", "Operator");
        await using var olga = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(olga.Page, "olga@example.org", password);
        await OpenAsync(page: olga.Page);
        await Assertions.Expect(Row(olga.Page, "bob@example.org").GetByTestId("edit-row")).ToBeVisibleAsync();

        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var accounts = scope.ServiceProvider.GetRequiredService<UserAdministration>();
            var id = (await accounts.ListAsync()).Single(u => u.Email == "olga@example.org").Id;
            Assert.True((await accounts.SetRoleAsync(id, "Viewer")).Succeeded);
        }

        await Row(olga.Page, "bob@example.org").GetByTestId("edit-row").ClickAsync();
        await Row(olga.Page, "bob@example.org").GetByTestId("project-dir-input").FillAsync("/shared/projects/bob");
        await Row(olga.Page, "bob@example.org").GetByTestId("project-dir-save").ClickAsync();
        await Assertions.Expect(Row(olga.Page, "bob@example.org").GetByTestId("row-error")).ToContainTextAsync("Your role (Viewer) does not allow this");
        Assert.Equal(0L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM user_settings WHERE id = 3 AND project_dir IS NOT NULL"));
        Assert.Empty(await AuditDetailsAsync("fractal.user.project-dir"));
    }

    [Fact]
    public async Task FiltersSearchSortAndPaging_Work()
    {
        // 60 more users, left out (not active, not verified), before the page reads anything: reads of a
        // target's users are shared for a few seconds, and a change made outside the dashboard is not seen sooner.
        var many = string.Join("", Enumerable.Range(100, 60).Select(i => $"INSERT INTO user_oauth (id, email, hashed_password, is_active, is_superuser, is_verified) VALUES ({i}, 'u{i}@example.org', 'x', false, false, false);"));
        await _fractal.ExecuteAsync(many);
        var rows = Page.GetByTestId("fractal-user");
        var count = Page.GetByTestId("users-count");

        // A filter in the address (the preflight page links here with ?filter=blocking).
        await OpenAsync("?filter=blocking");
        await Assertions.Expect(rows).ToHaveCountAsync(4);
        await Assertions.Expect(Page.GetByTestId("count-blocking")).ToHaveAttributeAsync("data-selected", "true");
        await Page.GetByTestId("count-left-out").ClickAsync();
        await Assertions.Expect(count).ToHaveTextAsync("62 user(s), page 1 of 2");
        await Assertions.Expect(rows).ToHaveCountAsync(50);

        // Paging: 70 users, 50 a page.
        await Page.GetByTestId("count-all").ClickAsync();
        await Assertions.Expect(count).ToHaveTextAsync("70 user(s), page 1 of 2");
        await Assertions.Expect(rows).ToHaveCountAsync(50);
        await Page.GetByRole(AriaRole.Button, new() { Name = "Next page" }).ClickAsync();
        await Assertions.Expect(count).ToHaveTextAsync("70 user(s), page 2 of 2");
        await Assertions.Expect(rows).ToHaveCountAsync(20);

        // Search, in any case, from the first page.
        await Page.FillAsync("#user-search", "ALICE");
        await Assertions.Expect(rows).ToHaveCountAsync(1);
        await Assertions.Expect(rows.First).ToHaveAttributeAsync("data-email", "alice@example.org");
        await Page.FillAsync("#user-search", "");
        await Assertions.Expect(count).ToHaveTextAsync("70 user(s), page 1 of 2");

        // Sort by e-mail (a click on the header), then descending.
        await Page.ClickAsync("#sort-email");
        await Assertions.Expect(rows.First).ToHaveAttributeAsync("data-email", "admin@fractal.xy");
        await Assertions.Expect(rows.Nth(9)).ToHaveAttributeAsync("data-email", "ivan@example.org");
        await Page.ClickAsync("#sort-email");
        await Assertions.Expect(rows.First).ToHaveAttributeAsync("data-email", "u159@example.org");
    }

    private async Task<List<string>> AuditDetailsAsync(string action)
    {
        await using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(_app.DataDirectory, "upgradeconsole.db")};Mode=ReadOnly");
        await db.OpenAsync();
        await using var cmd = new Microsoft.Data.Sqlite.SqliteCommand("SELECT Details FROM AuditEvents WHERE Action = $a ORDER BY Id", db);
        cmd.Parameters.AddWithValue("$a", action);
        await using var reader = await cmd.ExecuteReaderAsync();
        var list = new List<string>();
        while (await reader.ReadAsync())
        {
            list.Add(reader.GetString(0));
        }

        return list;
    }

    public async ValueTask DisposeAsync()
    {
        await _browser.DisposeAsync();
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
