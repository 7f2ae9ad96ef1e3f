using System.Net;
using Microsoft.Data.Sqlite;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Targets;

/// <summary>
/// Host keys fail closed: a server presenting another key than the pinned one blocks the target
/// until an Admin re-pins (old and new fingerprints in the audit history). Uses an sshd of its own,
/// since rotating the shared server's key would disturb other tests.
/// </summary>
public sealed class HostKeyPinningTests(Chromium chromium) : IAsyncLifetime
{
    private readonly SshServer _ssh = new();
    private readonly UpgradeConsoleApplicationFactory _app = new();

    public async ValueTask InitializeAsync()
    {
        await _ssh.InitializeAsync();
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
    }

    [Theory]
    [InlineData("SshNet")]
    [InlineData("OpenSsh")]
    public async Task ChangedHostKey_BlocksEverything_UntilAnAdminRepins(string transport)
    {
        var id = await AddPinnedTargetAsync("rotating", transport);
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        await SigningInTests.SignInAsync(page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await browser.GotoInteractiveAsync($"/targets/{id}");
        await page.ClickAsync("#test-connection");
        await Assertions.Expect(page.GetByTestId("remote-user")).ToHaveTextAsync(_ssh.User);
        var oldFingerprint = await _ssh.HostKeyFingerprintAsync();

        await _ssh.RotateHostKeyAsync();
        var newFingerprint = await _ssh.HostKeyFingerprintAsync();

        // The open ControlMaster still runs over the verified old connection; a fresh one must not.
        await CloseMastersAsync(id);
        await page.ClickAsync("#test-connection");
        await Assertions.Expect(page.GetByTestId("test-error")).ToContainTextAsync("man-in-the-middle");
        // The page shows the blocked state at once, and so does a fresh load.
        await Assertions.Expect(page.GetByTestId("mismatch-alert")).ToBeVisibleAsync();
        await page.ReloadAsync();
        await browser.WaitForInteractiveAsync();
        await Assertions.Expect(page.GetByTestId("mismatch-alert")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByTestId("hostkey-state").First).ToHaveTextAsync("Key changed: blocked");
        await browser.ScreenshotAsync("target-mismatch");

        // Blocked: discovery does not even try.
        await page.ClickAsync("#discover");
        await Assertions.Expect(page.GetByTestId("discovery-error")).ToContainTextAsync("blocked");

        // The Admin compares and re-pins, confirming in the dialog.
        await page.ClickAsync("#scan-keys");
        var offered = page.Locator($"[data-testid=offered-key][data-fingerprint='{newFingerprint}']");
        await Assertions.Expect(offered).ToContainTextAsync("differs from the pinned");
        await offered.GetByTestId("pin-key").ClickAsync();
        var dialog = page.Locator(".mud-dialog");
        await Assertions.Expect(dialog).ToContainTextAsync(newFingerprint);
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Pin", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByTestId("hostkey-state").First).ToHaveTextAsync("Pinned");
        await Assertions.Expect(page.GetByTestId("mismatch-alert")).ToHaveCountAsync(0);
        await page.ClickAsync("#test-connection");
        await Assertions.Expect(page.GetByTestId("remote-user")).ToHaveTextAsync(_ssh.User);
        Assert.True(browser.Problems.Count == 0, string.Join('\n', browser.Problems));

        var events = await AuditEventsAsync();
        Assert.Contains(events, e => e.Action == "target.hostkey-mismatch" && e.Details.Contains(oldFingerprint, StringComparison.Ordinal));
        var repin = Assert.Single(events, e => e.Action == "target.repin");
        Assert.Contains(oldFingerprint, repin.Details, StringComparison.Ordinal);
        Assert.Contains(newFingerprint, repin.Details, StringComparison.Ordinal);
        Assert.Equal(UpgradeConsoleApplicationFactory.AdminEmail, repin.Actor);
    }

    [Theory]
    [InlineData("SshNet")]
    [InlineData("OpenSsh")]
    public async Task TargetBehindAJumpHost_PinsBothKeys_AndConnectsThroughIt(string transport)
    {
        var fields = TargetFields("jumped");
        UseTransport(fields, transport);
        fields["JumpHost"] = $"{_ssh.User}@{_ssh.Host}:{_ssh.Port}";
        var id = await _app.AddTargetAsync(fields);
        var fingerprint = await _ssh.HostKeyFingerprintAsync();

        // The target's key cannot be scanned through a jump host whose own key is not pinned yet.
        var early = await AsAdminAsync(s => s.ScanAsync(id, false, Admin));
        Assert.Contains("Pin the jump host", early.Error, StringComparison.Ordinal);

        var jumpKeys = await AsAdminAsync(s => s.ScanAsync(id, true, Admin));
        Assert.Contains(jumpKeys.Keys, k => k.Fingerprint == fingerprint);
        await _app.PinHostKeyAsync(id, fingerprint, jump: true);

        var throughJump = await AsAdminAsync(s => s.ScanAsync(id, false, Admin));
        Assert.True(throughJump.Error is null, throughJump.Error);
        Assert.Contains(throughJump.Keys, k => k.Fingerprint == fingerprint);
        await _app.PinHostKeyAsync(id, fingerprint);

        var before = Logins();
        var test = await AsAdminAsync(s => s.TestAsync(id, Admin));
        Assert.True(test.Succeeded, test.Error);
        Assert.Equal(_ssh.User, test.Probe!.RemoteUser);
        // Through the jump host: two logins, the jump host's and the target's (here the same sshd).
        Assert.Equal(before + 2, Logins());

        int Logins() => System.Text.RegularExpressions.Regex.Count(_ssh.Log, "Accepted publickey for");
    }

    [Fact]
    public async Task Pin_WithAFingerprintTheHostDoesNotPresent_IsRefused()
    {
        var id = await _app.AddTargetAsync(TargetFields("forged"));
        var result = await AsAdminAsync(s => s.PinAsync(id, "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false, Admin));
        Assert.False(result.Succeeded);
        var errors = string.Join(" ", result.Errors);
        // A mistyped fingerprint is not a changed host key: the answer says it does not match and shows what the host presents.
        Assert.Contains("The fingerprint SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA does not match what the host presents now: ", errors, StringComparison.Ordinal);
        Assert.Contains(await _ssh.HostKeyFingerprintAsync(), errors, StringComparison.Ordinal);
        Assert.DoesNotContain("no longer presents", errors, StringComparison.Ordinal);
        var target = await AsAdminAsync(s => s.FindAsync(id, Admin));
        Assert.Equal(HostKeyState.Unpinned, target!.HostKeyState);
    }

    [Fact]
    public async Task StoredPrivateKey_IsEncryptedAtRest()
    {
        await _app.AddTargetAsync(TargetFields("at-rest"));
        await using var db = new SqliteConnection($"Data Source={Path.Combine(_app.DataDirectory, "upgradeconsole.db")};Mode=ReadOnly");
        await db.OpenAsync(TestContext.Current.CancellationToken);
        await using var cmd = new SqliteCommand("SELECT ProtectedPrivateKey FROM Targets WHERE Name = 'at-rest'", db);
        var stored = (string)(await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken))!;
        Assert.DoesNotContain("PRIVATE KEY", stored, StringComparison.Ordinal);
        Assert.DoesNotContain(_ssh.ClientKey.Split('\n')[1], stored, StringComparison.Ordinal);
        Assert.StartsWith("CfDJ8", stored, StringComparison.Ordinal); // a Data Protection payload
    }

    [Fact]
    public async Task TargetActions_FollowTheRoles()
    {
        var id = await AddPinnedTargetAsync("roles");
        var viewer = await _app.SignedInClientAsync(Roles.Viewer);
        var operatorClient = await _app.SignedInClientAsync(Roles.Operator);

        // What each role is offered (the page as first served, before its circuit starts).
        var viewerPage = await viewer.GetStringAsync($"/targets/{id}");
        Assert.Contains("data-testid=\"connection-test\"", viewerPage, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"test-connection\"", viewerPage, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"scan-keys\"", viewerPage, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"delete-target\"", viewerPage, StringComparison.Ordinal);
        var operatorPage = await operatorClient.GetStringAsync($"/targets/{id}");
        Assert.Contains("id=\"test-connection\"", operatorPage, StringComparison.Ordinal);
        Assert.Contains("id=\"discover\"", operatorPage, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"scan-keys\"", operatorPage, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"edit-target\"", operatorPage, StringComparison.Ordinal);

        // What the service lets each do, whatever a page offers.
        var viewerTest = await Assert.ThrowsAsync<AccessDeniedException>(() => _app.AsAsync<TargetService, ConnectionTestRecord>("viewer@example.org", (s, a) => s.TestAsync(id, a)));
        Assert.Contains("needs Operator", viewerTest.Message, StringComparison.Ordinal);
        var operatorTest = await _app.AsAsync<TargetService, ConnectionTestRecord>("operator@example.org", (s, a) => s.TestAsync(id, a));
        Assert.True(operatorTest.Succeeded, operatorTest.Error);
        await Assert.ThrowsAsync<AccessDeniedException>(() => _app.AsAsync<TargetService, TargetResult>("operator@example.org", (s, a) => s.PinAsync(id, "x", false, a)));
        await Assert.ThrowsAsync<AccessDeniedException>(() => _app.AsAsync<TargetService, TargetResult>("operator@example.org", (s, a) => s.DeleteAsync(id, a)));
        await Assert.ThrowsAsync<AccessDeniedException>(() => _app.AsAsync<TargetService, (IReadOnlyList<UpgradeConsole.Core.Remote.HostKey>, string?)>("operator@example.org", (s, a) => s.ScanAsync(id, false, a)));
        Assert.NotNull(await AsAdminAsync(s => s.FindAsync(id, Admin)));

        var edit = await operatorClient.GetAsync($"/targets/{id}/edit");
        Assert.Equal(HttpStatusCode.Redirect, edit.StatusCode);
        Assert.Contains("access-denied", edit.Headers.Location!.OriginalString, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EditingTheAddress_UnpinsTheKey()
    {
        var id = await AddPinnedTargetAsync("moving");
        var form = TargetForm.From((await AsAdminAsync(s => s.FindAsync(id, Admin)))!);
        form.Host = "localhost";
        var saved = await AsAdminAsync(s => s.UpdateAsync(id, form, Admin));
        Assert.True(saved.Succeeded, string.Join("; ", saved.Errors));
        Assert.Equal(HostKeyState.Unpinned, (await AsAdminAsync(s => s.FindAsync(id, Admin)))!.HostKeyState);
    }

    [Fact]
    public async Task TwoAdminsEditingTheSameTarget_TheSecondSaveIsRefused()
    {
        var id = await _app.AddTargetAsync(TargetFields("shared"));
        var target = (await AsAdminAsync(s => s.FindAsync(id, Admin)))!;
        var first = TargetForm.From(target);
        var second = TargetForm.From(target);
        first.StopCommand = "systemctl stop fractal";
        second.StartCommand = "systemctl start fractal";

        Assert.True((await AsAdminAsync(s => s.UpdateAsync(id, first, Admin))).Succeeded);
        var stale = await AsAdminAsync(s => s.UpdateAsync(id, second, Admin));
        Assert.False(stale.Succeeded);
        Assert.Contains("Someone else changed this target", string.Join(" ", stale.Errors), StringComparison.Ordinal);
        var now = (await AsAdminAsync(s => s.FindAsync(id, Admin)))!;
        Assert.Equal("systemctl stop fractal", now.StopCommand);
        Assert.Equal(Target.DefaultStartCommand, now.StartCommand);
    }

    private System.Security.Claims.ClaimsPrincipal Admin { get; set; } = default!;

    /// <summary>Calls the targets page's service as the first Admin (in <see cref="Admin"/>), in a scope of its own.</summary>
    private async Task<T> AsAdminAsync<T>(Func<TargetService, Task<T>> call)
    {
        Admin = await _app.PrincipalOfAsync();
        return await _app.AsAsync<TargetService, T>(UpgradeConsoleApplicationFactory.AdminEmail, (s, _) => call(s));
    }

    private Dictionary<string, string> TargetFields(string name) => new()
    {
        ["Name"] = name,
        ["Host"] = _ssh.Host,
        ["Port"] = _ssh.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["SshUser"] = _ssh.User,
        ["PrivateKey"] = _ssh.ClientKey,
        ["WorkingDirectory"] = "~/fractal",
    };

    /// <summary>
    /// The target's client; the System OpenSSH client gets the key as a file on the dashboard's host (it takes no
    /// key stored in the dashboard: <see cref="TargetService.OpenSshStoredKeyRefusal"/>).
    /// </summary>
    private void UseTransport(Dictionary<string, string> fields, string transport)
    {
        fields["Transport"] = transport;
        if (transport == "OpenSsh")
        {
            fields.Remove("PrivateKey");
            fields["AuthMethod"] = "KeyFile";
            fields["KeyFilePath"] = _ssh.ClientKeyPath;
        }
    }

    private async Task<int> AddPinnedTargetAsync(string name, string transport = "SshNet")
    {
        var fields = TargetFields(name);
        UseTransport(fields, transport);
        var id = await _app.AddTargetAsync(fields);
        await _app.PinHostKeyAsync(id, await _ssh.HostKeyFingerprintAsync());
        return id;
    }

    private async Task CloseMastersAsync(int id)
    {
        var socket = Path.Combine(_app.DataDirectory, "ssh", id.ToString(System.Globalization.CultureInfo.InvariantCulture), "cm");
        await ProcessRunner.RunAsync("ssh", ["-o", $"ControlPath={socket}", "-O", "exit", "x"], check: false);
    }

    private async Task<List<(string Action, string Actor, string Details)>> AuditEventsAsync()
    {
        await using var db = new SqliteConnection($"Data Source={Path.Combine(_app.DataDirectory, "upgradeconsole.db")};Mode=ReadOnly");
        await db.OpenAsync(TestContext.Current.CancellationToken);
        await using var cmd = new SqliteCommand("SELECT Action, Actor, Details FROM AuditEvents ORDER BY Id", db);
        await using var reader = await cmd.ExecuteReaderAsync(TestContext.Current.CancellationToken);
        var events = new List<(string, string, string)>();
        while (await reader.ReadAsync(TestContext.Current.CancellationToken))
        {
            events.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2)));
        }

        return events;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        await _ssh.DisposeAsync();
    }
}
