using System.Net;
using Microsoft.Data.Sqlite;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;

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
    private HttpClient _adminClient = default!;

    public async ValueTask InitializeAsync()
    {
        await _ssh.InitializeAsync();
        _app.ServeOverKestrel();
        _adminClient = await _app.CreateFirstAdminAsync();
    }

    [Theory]
    [InlineData("SshNet")]
    [InlineData("OpenSsh")]
    public async Task ChangedHostKey_BlocksEverything_UntilAnAdminRepins(string transport)
    {
        var id = await AddPinnedTargetAsync("rotating", transport);
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = browser.Page;
        page.Dialog += async (_, dialog) => await dialog.AcceptAsync();
        await SigningInTests.SignInAsync(page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await page.GotoAsync($"/targets/{id}");
        await page.ClickAsync("#test-connection");
        await Assertions.Expect(page.GetByTestId("remote-user")).ToHaveTextAsync(_ssh.User);
        var oldFingerprint = await _ssh.HostKeyFingerprintAsync();

        await _ssh.RotateHostKeyAsync();
        var newFingerprint = await _ssh.HostKeyFingerprintAsync();

        // The open ControlMaster still runs over the verified old connection; a fresh one must not.
        await CloseMastersAsync(id);
        await page.ClickAsync("#test-connection");
        await Assertions.Expect(page.GetByTestId("test-error")).ToContainTextAsync("man-in-the-middle");
        await page.ReloadAsync();
        await Assertions.Expect(page.GetByTestId("mismatch-alert")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByTestId("hostkey-state").First).ToHaveTextAsync("Key changed: blocked");
        await browser.ScreenshotAsync("target-mismatch");

        // Blocked: discovery does not even try.
        await page.ClickAsync("#discover");
        await Assertions.Expect(page.GetByTestId("discovery-error")).ToContainTextAsync("blocked");

        // The Admin compares and re-pins.
        await page.ClickAsync("#scan-keys");
        var offered = page.Locator($"[data-testid=offered-key][data-fingerprint='{newFingerprint}']");
        await Assertions.Expect(offered).ToContainTextAsync("differs from the pinned");
        await offered.GetByTestId("pin-key").ClickAsync();
        await Assertions.Expect(page.GetByTestId("hostkey-state").First).ToHaveTextAsync("Pinned");
        await page.ClickAsync("#test-connection");
        await Assertions.Expect(page.GetByTestId("remote-user")).ToHaveTextAsync(_ssh.User);

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
        fields["Transport"] = transport;
        fields["JumpHost"] = $"{_ssh.User}@{_ssh.Host}:{_ssh.Port}";
        var id = await UpgradeConsoleApplicationFactory.AddTargetAsync(_adminClient, fields);
        var fingerprint = await _ssh.HostKeyFingerprintAsync();

        // The target's key cannot be scanned through a jump host whose own key is not pinned yet.
        var early = await (await _adminClient.HtmxPostAsync($"/targets/{id}/scan", $"/targets/{id}")).ExpectOkAsync();
        Assert.Contains("Pin the jump host", early, StringComparison.Ordinal);

        var jumpKeys = await (await _adminClient.HtmxPostAsync($"/targets/{id}/scan?jump=true", $"/targets/{id}")).ExpectOkAsync();
        Assert.Contains(fingerprint, WebUtility.HtmlDecode(jumpKeys), StringComparison.Ordinal);
        await (await _adminClient.HtmxPostAsync($"/targets/{id}/pin", $"/targets/{id}", new() { ["fingerprint"] = fingerprint, ["jump"] = "true" })).ExpectOkAsync();

        var throughJump = await (await _adminClient.HtmxPostAsync($"/targets/{id}/scan", $"/targets/{id}")).ExpectOkAsync();
        Assert.Contains(fingerprint, WebUtility.HtmlDecode(throughJump), StringComparison.Ordinal);
        await (await _adminClient.HtmxPostAsync($"/targets/{id}/pin", $"/targets/{id}", new() { ["fingerprint"] = fingerprint })).ExpectOkAsync();

        var before = Logins();
        var test = await (await _adminClient.HtmxPostAsync($"/targets/{id}/test", $"/targets/{id}")).ExpectOkAsync();
        Assert.Contains($"data-testid=\"remote-user\">{_ssh.User}<", test, StringComparison.Ordinal);
        // Through the jump host: two logins, the jump host's and the target's (here the same sshd).
        Assert.Equal(before + 2, Logins());

        int Logins() => System.Text.RegularExpressions.Regex.Count(_ssh.Log, "Accepted publickey for");
    }

    [Fact]
    public async Task Pin_WithAFingerprintTheHostDoesNotPresent_IsRefused()
    {
        var id = await UpgradeConsoleApplicationFactory.AddTargetAsync(_adminClient, TargetFields("forged"));
        var response = await _adminClient.HtmxPostAsync($"/targets/{id}/pin", $"/targets/{id}", new() { ["fingerprint"] = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" });
        var body = WebUtility.HtmlDecode(await response.ExpectOkAsync());
        // A mistyped fingerprint is not a changed host key: the answer says it does not match and shows what the host presents.
        Assert.Contains("The fingerprint SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA does not match what the host presents now: ", body, StringComparison.Ordinal);
        Assert.Contains(await _ssh.HostKeyFingerprintAsync(), body, StringComparison.Ordinal);
        Assert.DoesNotContain("no longer presents", body, StringComparison.Ordinal);
        var page = await _adminClient.GetStringAsync($"/targets/{id}");
        Assert.Contains("Not pinned", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoredPrivateKey_IsEncryptedAtRest()
    {
        await UpgradeConsoleApplicationFactory.AddTargetAsync(_adminClient, TargetFields("at-rest"));
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

        var viewerPage = await viewer.GetStringAsync($"/targets/{id}");
        Assert.DoesNotContain("id=\"test-connection\"", viewerPage, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"scan-keys\"", viewerPage, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.HtmxPostAsync($"/targets/{id}/test", "/account/password")).StatusCode);

        var operatorPage = await operatorClient.GetStringAsync($"/targets/{id}");
        Assert.Contains("id=\"test-connection\"", operatorPage, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"scan-keys\"", operatorPage, StringComparison.Ordinal);
        await (await operatorClient.HtmxPostAsync($"/targets/{id}/test", "/account/password")).ExpectOkAsync();
        Assert.Equal(HttpStatusCode.Forbidden, (await operatorClient.HtmxPostAsync($"/targets/{id}/pin", "/account/password", new() { ["fingerprint"] = "x" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await operatorClient.HtmxPostAsync($"/targets/{id}/delete", "/account/password")).StatusCode);
        var edit = await operatorClient.GetAsync($"/targets/{id}/edit");
        Assert.Equal(HttpStatusCode.Redirect, edit.StatusCode);
        Assert.Contains("access-denied", edit.Headers.Location!.OriginalString, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EditingTheAddress_UnpinsTheKey()
    {
        var id = await AddPinnedTargetAsync("moving");
        var fields = TargetFields("moving");
        fields["Host"] = "localhost";
        var page = await _adminClient.GetStringAsync($"/targets/{id}/edit");
        fields["Version"] = System.Text.RegularExpressions.Regex.Match(page, "name=\"Input.Version\" value=\"([^\"]+)\"").Groups[1].Value;
        fields["PrivateKey"] = "";
        var form = fields.ToDictionary(kv => "Input." + kv.Key, kv => kv.Value);
        foreach (var (k, v) in new Dictionary<string, string> { ["Input.Product"] = "fractal-server", ["Input.AuthMethod"] = "StoredKey", ["Input.EnvFileName"] = ".fractal_server.env", ["Input.ServerUrl"] = "http://127.0.0.1:8000", ["Input.StopCommand"] = "a", ["Input.StartCommand"] = "b", ["Input.StatusCommand"] = "c", ["Input.RunsDirectory"] = "~/.upgradeconsole/runs", ["Input.BackupDirectory"] = "~/upgradeconsole-backups" })
        {
            form.TryAdd(k, v);
        }

        var response = await _adminClient.PostFormAsync($"/targets/{id}/edit", "target", form);
        await response.ExpectRedirectAsync($"/targets/{id}");
        var after = await _adminClient.GetStringAsync($"/targets/{id}");
        Assert.Contains("Not pinned", after, StringComparison.Ordinal);
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

    private async Task<int> AddPinnedTargetAsync(string name, string transport = "SshNet")
    {
        var fields = TargetFields(name);
        fields["Transport"] = transport;
        var id = await UpgradeConsoleApplicationFactory.AddTargetAsync(_adminClient, fields);
        var fingerprint = await _ssh.HostKeyFingerprintAsync();
        var pinned = await _adminClient.HtmxPostAsync($"/targets/{id}/pin", $"/targets/{id}", new() { ["fingerprint"] = fingerprint });
        Assert.Equal("true", pinned.Headers.GetValues("HX-Refresh").Single());
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
