using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Fractal;

/// <summary>
/// An admin opens the users page of a 2.16 target (real PostgreSQL loaded with the project's 2.16
/// fixture, reached through an SSH forward), sees who blocks the upgrade and who would lose access,
/// and fixes them in the browser; the database and the audit history show each change.
/// </summary>
public sealed class FixingUsersBeforeTheUpgradeTests(Chromium chromium, SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private FractalTarget _fractal = default!;
    private BrowserSession _browser = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        var admin = await _app.CreateFirstAdminAsync();
        _fractal = await FractalTarget.CreateAsync(_app, admin, ssh, postgres);
        _browser = await chromium.NewSessionAsync(_app.BaseUrl);
        _browser.Page.Dialog += async (_, dialog) => await dialog.AcceptAsync();
        await SigningInTests.SignInAsync(_browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
    }

    private IPage Page => _browser.Page;

    private ILocator Row(string email) => Page.Locator($"[data-testid=fractal-user][data-email='{email}']");

    [Fact]
    public async Task UsersPage_ShowsWhat2170WillDoWithEachUser()
    {
        await Page.GotoAsync($"/targets/{_fractal.TargetId}/users");
        await _browser.ScreenshotAsync("fractal-users");
        await Assertions.Expect(Page.GetByTestId("count-blocking")).ToContainTextAsync("4");
        await Assertions.Expect(Page.GetByTestId("count-left-out")).ToContainTextAsync("2");
        await Assertions.Expect(Page.GetByTestId("count-migrated")).ToContainTextAsync("4");

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
            await Assertions.Expect(Row(email)).ToHaveAttributeAsync("data-outcome", outcome);
            await Assertions.Expect(Row(email).GetByTestId("reasons")).ToContainTextAsync(reason);
        }

        await Assertions.Expect(Row("alice@example.org")).ToContainTextAsync("All, lab-a");
        // The database password never reaches the page.
        Assert.DoesNotContain(FractalTarget.DbPassword, await Page.ContentAsync(), StringComparison.Ordinal);
        Assert.True(_browser.Problems.Count == 0, string.Join('\n', _browser.Problems));
    }

    [Fact]
    public async Task InlineFixes_TurnBlockingUsersIntoMigrated_AndAreAudited()
    {
        await Page.GotoAsync($"/targets/{_fractal.TargetId}/users");

        // bob: set project_dir.
        await Row("bob@example.org").GetByTestId("project-dir-input").FillAsync("/shared/projects/bob");
        await Row("bob@example.org").GetByTestId("project-dir-save").ClickAsync();
        await Assertions.Expect(Row("bob@example.org").GetByTestId("row-message")).ToHaveTextAsync("project_dir saved.");
        await Assertions.Expect(Row("bob@example.org")).ToHaveAttributeAsync("data-outcome", "Migrated");

        // frank: set slurm_user.
        await Row("frank@example.org").GetByTestId("slurm-user-input").FillAsync("frank");
        await Row("frank@example.org").GetByTestId("slurm-user-save").ClickAsync();
        await Assertions.Expect(Row("frank@example.org")).ToHaveAttributeAsync("data-outcome", "Migrated");

        // erin: create the settings row, then fill it.
        await Row("erin@example.org").GetByTestId("create-settings").ClickAsync();
        await Assertions.Expect(Row("erin@example.org").GetByTestId("row-message")).ToHaveTextAsync("Settings row created.");
        await Assertions.Expect(Row("erin@example.org").GetByTestId("reasons")).ToContainTextAsync("project_dir is not set");
        await Row("erin@example.org").GetByTestId("project-dir-input").FillAsync("/shared/projects/erin");
        await Row("erin@example.org").GetByTestId("project-dir-save").ClickAsync();
        await Assertions.Expect(Row("erin@example.org").GetByTestId("row-message")).ToHaveTextAsync("project_dir saved.");
        await Assertions.Expect(Row("erin@example.org").GetByTestId("reasons")).ToHaveTextAsync("has no slurm_user (the SLURM account jobs run as)");
        await Row("erin@example.org").GetByTestId("slurm-user-input").FillAsync("erin");
        await Row("erin@example.org").GetByTestId("slurm-user-save").ClickAsync();
        await Assertions.Expect(Row("erin@example.org").GetByTestId("row-message")).ToHaveTextAsync("slurm_user saved.");
        await Assertions.Expect(Row("erin@example.org")).ToHaveAttributeAsync("data-outcome", "Migrated");

        // carol: select, mark active and verified; then she needs her own settings.
        await Row("carol@example.org").GetByTestId("select-user").CheckAsync();
        await Page.ClickAsync("#bulk-activate");
        await Assertions.Expect(Page.GetByTestId("bulk-messages")).ToContainTextAsync("carol@example.org: now active and verified");
        await Assertions.Expect(Row("carol@example.org")).ToHaveAttributeAsync("data-outcome", "Blocks");

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

    [Theory]
    [InlineData("/tmp/$(touch /tmp/uc-pwned)")]
    [InlineData("/tmp/a;rm -rf /")]
    [InlineData("/tmp/`id`")]
    [InlineData("relative/dir")]
    [InlineData("   ")]
    public async Task ProjectDir_LikeShellInjectionOrRelative_IsRefused(string value)
    {
        await Page.GotoAsync($"/targets/{_fractal.TargetId}/users");
        await Row("bob@example.org").GetByTestId("project-dir-input").FillAsync(value);
        await Row("bob@example.org").GetByTestId("project-dir-save").ClickAsync();
        await Assertions.Expect(Row("bob@example.org").GetByTestId("row-error")).ToContainTextAsync("project_dir");
        Assert.Equal(0L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM user_oauth u JOIN user_settings s ON s.id = u.user_settings_id WHERE u.email = 'bob@example.org' AND s.project_dir IS NOT NULL"));
    }

    [Fact]
    public async Task RowChangedSinceShown_IsRefused_AndShowsTheCurrentValues()
    {
        await Page.GotoAsync($"/targets/{_fractal.TargetId}/users");
        // Someone else (Fractal's own admin page, say) sets bob's project_dir meanwhile.
        await _fractal.ExecuteAsync("UPDATE user_settings SET project_dir = '/elsewhere/bob' WHERE id = 3");

        await Row("bob@example.org").GetByTestId("project-dir-input").FillAsync("/shared/projects/bob");
        await Row("bob@example.org").GetByTestId("project-dir-save").ClickAsync();
        await Assertions.Expect(Row("bob@example.org").GetByTestId("row-error")).ToContainTextAsync("Someone changed this user");
        await Assertions.Expect(Row("bob@example.org").GetByTestId("project-dir-input")).ToHaveValueAsync("/elsewhere/bob");
        Assert.Equal("/elsewhere/bob", await _fractal.ScalarAsync<string>("SELECT project_dir FROM user_settings WHERE id = 3"));
        Assert.Contains(await AuditDetailsAsync("fractal.user.project-dir"), d => d.Contains("\"conflict\":true", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Pattern_PreviewsEveryValue_ThenAppliesOnlyValidOnes()
    {
        await Page.GotoAsync($"/targets/{_fractal.TargetId}/users");
        await Page.Locator("[data-testid=pattern-tool] summary").ClickAsync();
        await Page.FillAsync("#pattern", "/shared/projects/{email_local}");
        await Page.ClickAsync("#preview-pattern");
        var preview = Page.GetByTestId("pattern-preview");
        await Assertions.Expect(preview.Locator("[data-testid=proposal][data-email='bob@example.org']")).ToContainTextAsync("/shared/projects/bob");
        await Assertions.Expect(preview.Locator("[data-testid=proposal][data-email='ivan@example.org']")).ToContainTextAsync("/shared/projects/ivan");
        await Assertions.Expect(preview.Locator("[data-testid=proposal][data-email='erin@example.org']")).ToContainTextAsync("no settings row");
        // Users whose project_dir is fine are not touched.
        await Assertions.Expect(preview.Locator("[data-testid=proposal][data-email='alice@example.org']")).ToHaveCountAsync(0);
        await _browser.ScreenshotAsync("fractal-pattern-preview");

        await Page.ClickAsync("#apply-pattern");
        await Assertions.Expect(Page.GetByTestId("bulk-messages")).ToContainTextAsync("ivan@example.org: project_dir set to /shared/projects/ivan");
        Assert.Equal("/shared/projects/ivan", await _fractal.ScalarAsync<string>("SELECT project_dir FROM user_settings WHERE id = 9"));
        Assert.Equal("/shared/projects/alice", await _fractal.ScalarAsync<string>("SELECT project_dir FROM user_settings WHERE id = 2"));
    }

    [Fact]
    public async Task CheckOnHost_TellsWhetherTheDirectoryExists()
    {
        var dir = $"/tmp/uc-project-{Guid.NewGuid():N}";
        await ssh.RunAsync($"mkdir -p {dir}");
        await _fractal.ExecuteAsync($"UPDATE user_settings SET project_dir = '{dir}' WHERE id = 3");
        await Page.GotoAsync($"/targets/{_fractal.TargetId}/users");
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
        var admin = await _app.LoginAsAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);

        // The dashboard keeps no idle connection, so catch it in the act: a lock held here makes its
        // query wait, and PostgreSQL shows the waiting session without a client address (a Unix socket).
        await using var holder = new Npgsql.NpgsqlConnection(_fractal.DatabaseConnection);
        await holder.OpenAsync();
        await using var tx = await holder.BeginTransactionAsync();
        await using (var lockCmd = new Npgsql.NpgsqlCommand("LOCK TABLE user_oauth IN ACCESS EXCLUSIVE MODE", holder, tx))
        {
            await lockCmd.ExecuteNonQueryAsync();
        }

        var request = admin.GetAsync($"/targets/{_fractal.TargetId}/users");
        long viaSocket = 0;
        for (var i = 0; i < 100 && viaSocket == 0; i++)
        {
            await Task.Delay(100);
            viaSocket = await _fractal.ScalarAsync<long>(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'UpgradeConsole' AND client_addr IS NULL AND datname = current_database() AND wait_event_type = 'Lock'");
        }

        await tx.RollbackAsync();
        var page = await (await request).ExpectOkAsync();
        Assert.Contains("bob@example.org", page, StringComparison.Ordinal);
        Assert.Equal(1, viaSocket);
    }

    [Fact]
    public async Task ViewerSeesTheUsers_ButCannotChangeThem()
    {
        var viewer = await _app.SignedInClientAsync("Viewer");
        var page = await viewer.GetStringAsync($"/targets/{_fractal.TargetId}/users");
        Assert.Contains("bob@example.org", page, StringComparison.Ordinal);
        Assert.DoesNotContain("data-testid=\"project-dir-input\"", page, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"bulk-activate\"", page, StringComparison.Ordinal);
        var post = await viewer.HtmxPostAsync($"/targets/{_fractal.TargetId}/users/3/project-dir", "/account/password", new() { ["version"] = "x", ["value"] = "/shared/x" });
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, post.StatusCode);
        Assert.Equal(0L, await _fractal.ScalarAsync<long>("SELECT count(*) FROM user_settings WHERE project_dir = '/shared/x'"));
    }

    [Fact]
    public async Task FiltersSearchSortAndPaging_Work()
    {
        var admin = await _app.LoginAsAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        var blocking = await admin.GetStringAsync($"/targets/{_fractal.TargetId}/users?filter=blocking");
        Assert.Equal(4, System.Text.RegularExpressions.Regex.Count(blocking, "data-testid=\"fractal-user\""));
        var search = await admin.GetStringAsync($"/targets/{_fractal.TargetId}/users?q=ALICE");
        Assert.Equal(1, System.Text.RegularExpressions.Regex.Count(search, "data-testid=\"fractal-user\""));
        var sorted = await admin.GetStringAsync($"/targets/{_fractal.TargetId}/users?sort=email");
        Assert.True(sorted.IndexOf("admin@fractal.xy", StringComparison.Ordinal) < sorted.IndexOf("bob@example.org", StringComparison.Ordinal));
        Assert.True(sorted.IndexOf("bob@example.org", StringComparison.Ordinal) < sorted.IndexOf("ivan@example.org", StringComparison.Ordinal));

        var many = string.Join("", Enumerable.Range(100, 60).Select(i => $"INSERT INTO user_oauth (id, email, hashed_password, is_active, is_superuser, is_verified) VALUES ({i}, 'u{i}@example.org', 'x', false, false, false);"));
        await _fractal.ExecuteAsync(many);
        var page1 = await admin.GetStringAsync($"/targets/{_fractal.TargetId}/users");
        Assert.Equal(50, System.Text.RegularExpressions.Regex.Count(page1, "data-testid=\"fractal-user\""));
        Assert.Contains("70 user(s), page 1 of 2", page1, StringComparison.Ordinal);
        var page2 = await admin.GetStringAsync($"/targets/{_fractal.TargetId}/users?page=2");
        Assert.Equal(20, System.Text.RegularExpressions.Regex.Count(page2, "data-testid=\"fractal-user\""));
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
