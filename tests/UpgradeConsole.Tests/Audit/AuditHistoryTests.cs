using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Npgsql;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Audit;

/// <summary>
/// The audit page on PostgreSQL: filters, search in details, CSV export and the chain check; then
/// one row altered behind the application's back is named exactly, by the page and by
/// <c>audit verify</c> (a real process).
/// </summary>
public sealed class AuditHistoryTests(Chromium chromium, PostgresServer postgres) : IAsyncLifetime
{
    private UpgradeConsoleApplicationFactory _app = default!;
    private string _connectionString = "";
    private HttpClient _admin = default!;

    public async ValueTask InitializeAsync()
    {
        _connectionString = await postgres.CreateDatabaseAsync();
        _app = new UpgradeConsoleApplicationFactory(DatabaseProvider.PostgreSQL, _connectionString);
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
    }

    [Fact]
    public async Task FiltersSearchExportAndVerify_ThenATamperedRowIsNamed()
    {
        // Some history: a failed sign-in, three accounts, a role change.
        var anonymous = _app.CreateBrowserLikeClient();
        await anonymous.PostFormAsync("/account/login", "login", new() { ["Input.Email"] = "=mallory@example.org", ["Input.Password"] = "guessing-1234" });
        await _app.CreateUserAsync(_admin, "vera@example.org", "Viewer");
        await _app.CreateUserAsync(_admin, "otto@example.org", "Operator");
        var viewerPassword = await _app.CreateUserAsync(_admin, "watcher@example.org", "Viewer");

        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await Accounts.SigningInTests.SignInAsync(page, "watcher@example.org", viewerPassword);
        await browser.GotoInteractiveAsync("/audit");
        var events = page.GetByTestId("audit-event");
        var rows = page.Locator("tr:has([data-testid=audit-event])");
        await Assertions.Expect(events.First).ToBeVisibleAsync();
        var all = await events.CountAsync();
        Assert.True(all >= 6, $"{all} events");
        await browser.ScreenshotAsync("audit");

        // By action family, by actor, by search in the details.
        await page.SelectOptionAsync("#action", "account.");
        await page.ClickAsync("#audit-apply");
        await page.WaitForAddressAsync(new Regex(@"/audit\?action=account\.$"));
        await Assertions.Expect(page.Locator("[data-testid=audit-event][data-action=user\\.create]")).ToHaveCountAsync(0);
        await Assertions.Expect(page.Locator("[data-testid=audit-event][data-action=account\\.login-failed]")).ToHaveCountAsync(1);
        Assert.All(await events.EvaluateAllAsync<string[]>("rs => rs.map(r => r.dataset.action)"), a => Assert.StartsWith("account.", a, StringComparison.Ordinal));

        await browser.GotoInteractiveAsync("/audit?actor=MALLORY");
        await Assertions.Expect(rows).ToHaveCountAsync(1);
        await Assertions.Expect(events.First).ToHaveAttributeAsync("data-action", "account.login-failed");

        await browser.GotoInteractiveAsync("/audit");
        await page.FillAsync("#q", "\"operator\"");
        await page.ClickAsync("#audit-apply");
        await Assertions.Expect(rows).ToHaveCountAsync(1);
        await Assertions.Expect(rows.First).ToContainTextAsync("otto@example.org");

        // A time window that ends before anything happened is empty.
        await browser.GotoInteractiveAsync("/audit?to=2000-01-01T00:00");
        await Assertions.Expect(page.GetByTestId("audit-empty")).ToContainTextAsync("No event matches");

        // CSV: every matching event with its hashes; a formula-like cell (the typed sign-in name) is defused.
        var csv = await (await _admin.GetAsync("/audit/export.csv?action=user.create")).Content.ReadAsStringAsync();
        var lines = csv.Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("sequence,time_utc,actor,action,target_id,target,object,details,previous_hash,hash", lines[0]);
        Assert.Equal(3, lines.Length - 1);
        Assert.All(lines.Skip(1), l => Assert.Matches(",[0-9a-f]{64},[0-9a-f]{64}$", l));
        var vera = long.Parse(lines.Single(l => l.Contains("vera@example.org", StringComparison.Ordinal)).Split(',')[0], System.Globalization.CultureInfo.InvariantCulture);
        var failed = await (await _admin.GetAsync("/audit/export.csv?action=account.login-failed")).Content.ReadAsStringAsync();
        Assert.Contains(",'=mallory@example.org,", failed, StringComparison.Ordinal);
        Assert.DoesNotContain(",=mallory", failed, StringComparison.Ordinal);

        // The chain holds.
        await browser.GotoInteractiveAsync("/audit");
        await page.ClickAsync("#audit-verify-button");
        await Assertions.Expect(page.GetByTestId("audit-verify-result")).ToHaveAttributeAsync("data-holds", "true");
        Assert.Equal(0, (await Cli(["audit", "verify"])).ExitCode);

        // Someone with the database's powers edits vera's event: the trigger stops a plain UPDATE, so they disable it first.
        await using (var conn = new NpgsqlConnection(_connectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($$"""
                ALTER TABLE "AuditEvents" DISABLE TRIGGER audit_events_append_only;
                UPDATE "AuditEvents" SET "Details" = replace("Details", 'Viewer', 'Admin') WHERE "Id" = {{vera}};
                ALTER TABLE "AuditEvents" ENABLE TRIGGER audit_events_append_only;
                """, conn);
            await cmd.ExecuteNonQueryAsync();
        }

        // A Viewer's check reads only the events since the last verification (security finding 2): it says so, and holds.
        await page.ReloadAsync();
        await browser.WaitForInteractiveAsync();
        await page.ClickAsync("#audit-verify-button");
        await Assertions.Expect(page.GetByTestId("audit-verify-result")).ToHaveAttributeAsync("data-holds", "true");
        await Assertions.Expect(page.GetByTestId("audit-verify-result")).ToContainTextAsync("since the last verification");

        // An Admin's check walks the whole chain and names the edited event.
        await using var adminBrowser = await chromium.NewSessionAsync(_app.BaseUrl);
        page = adminBrowser.Page;
        await Accounts.SigningInTests.SignInAsync(page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await adminBrowser.GotoInteractiveAsync("/audit");
        await page.ClickAsync("#audit-verify-button");
        var result = page.GetByTestId("audit-verify-result");
        await Assertions.Expect(result).ToHaveAttributeAsync("data-holds", "false");
        await Assertions.Expect(result).ToHaveAttributeAsync("data-broken-at", vera.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await Assertions.Expect(result).ToContainTextAsync($"broken at event {vera}: its content does not match its hash");
        // "Show it" opens the history at the broken event (the newest shown).
        await result.GetByRole(AriaRole.Link, new() { Name = "Show it" }).ClickAsync();
        await Assertions.Expect(page.GetByTestId("audit-event").First).ToHaveAttributeAsync("data-id", vera.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var cli = await Cli(["audit", "verify"]);
        Assert.Equal(2, cli.ExitCode);
        Assert.Contains($"broken at event {vera}:", cli.StandardError, StringComparison.Ordinal);
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
        Assert.True(adminBrowser.Problems.Count == 0, string.Join('\n', adminBrowser.Problems));
    }

    [Fact]
    public async Task ALongHistory_PagesOlderAndNewer_ByKeyset_InTheDatabase()
    {
        // 230 events of one kind, recorded as the application records any (the chain stays whole).
        var audit = _app.Services.GetRequiredService<UpgradeConsole.Web.Audit.AuditLog>();
        for (var i = 1; i <= 230; i++)
        {
            await audit.RecordAsync("bulk@example.org", "test.bulk", subject: $"bulk {i}", ct: TestContext.Current.CancellationToken);
        }

        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await Accounts.SigningInTests.SignInAsync(page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await browser.GotoInteractiveAsync("/audit?action=test.bulk");
        var rows = page.Locator("tr:has([data-testid=audit-event])");
        await Assertions.Expect(rows).ToHaveCountAsync(100);
        await Assertions.Expect(rows.First).ToContainTextAsync("bulk 230");
        await page.ClickAsync("#audit-older");
        await Assertions.Expect(rows.First).ToContainTextAsync("bulk 130");
        await Assertions.Expect(rows).ToHaveCountAsync(100);
        await page.ClickAsync("#audit-older");
        await Assertions.Expect(rows).ToHaveCountAsync(30);
        await Assertions.Expect(rows.Last).ToContainTextAsync("bulk 1");
        await Assertions.Expect(page.Locator("#audit-older")).ToBeDisabledAsync();
        await page.ClickAsync("#audit-newer");
        await Assertions.Expect(rows.First).ToContainTextAsync("bulk 130");
        await page.ClickAsync("#audit-newer");
        await Assertions.Expect(rows.First).ToContainTextAsync("bulk 230");
        await Assertions.Expect(page.Locator("#audit-newer")).ToBeDisabledAsync();
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));
    }

    [Fact]
    public async Task ADeletedEvent_IsNamedAsMissing()
    {
        await _app.CreateUserAsync(_admin, "a@example.org", "Viewer");
        await _app.CreateUserAsync(_admin, "b@example.org", "Viewer");
        await using (var conn = new NpgsqlConnection(_connectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("""
                ALTER TABLE "AuditEvents" DISABLE TRIGGER audit_events_append_only;
                DELETE FROM "AuditEvents" WHERE "Id" = 2;
                ALTER TABLE "AuditEvents" ENABLE TRIGGER audit_events_append_only;
                """, conn);
            await cmd.ExecuteNonQueryAsync();
        }

        var cli = await Cli(["audit", "verify"]);
        Assert.Equal(2, cli.ExitCode);
        Assert.Contains("broken at event 2: event 2 missing", cli.StandardError, StringComparison.Ordinal);
    }

    private Task<ProcessRunner.Result> Cli(string[] args) =>
        ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args], environment: new Dictionary<string, string?>
        {
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["UpgradeConsole__DataDirectory"] = _app.DataDirectory,
            ["Database__Provider"] = "PostgreSQL",
            ["ConnectionStrings__UpgradeConsole"] = _connectionString,
            ["UpgradeConsole__KeyEncryptionKey"] = UpgradeConsoleApplicationFactory.TestKeyEncryptionKey,
        }, workingDirectory: AppContext.BaseDirectory, check: false);

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
