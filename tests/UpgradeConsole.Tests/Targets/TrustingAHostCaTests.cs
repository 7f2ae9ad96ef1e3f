using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Targets;

/// <summary>
/// A target trusted through a host certificate authority (its CA's fingerprint pinned, no host key) is not
/// "not pinned": the targets list, the target page and the overview say "Trusted CA" with the CA's
/// fingerprint, and the API's host-key state says so beside its unchanged fields.
/// </summary>
public sealed class TrustingAHostCaTests(Chromium chromium) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private string _ca = "";

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
        // A real CA key's fingerprint, as ssh-keygen -lf prints it.
        var dir = Directory.CreateTempSubdirectory("uc-hostca-").FullName;
        try
        {
            await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", Path.Combine(dir, "host_ca")]);
            _ca = (await ProcessRunner.RunAsync("ssh-keygen", ["-l", "-E", "sha256", "-f", Path.Combine(dir, "host_ca.pub")])).StandardOutput.Split(' ')[1];
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task ATargetTrustedThroughAHostCa_ReadsTrustedCa_OnEveryPage_AndInTheApi()
    {
        var id = await _app.AddTargetAsync(new()
        {
            ["Name"] = "ca-trusted",
            ["Host"] = "127.0.0.1",
            ["SshUser"] = "fractal",
            ["PrivateKey"] = (await SshServer.NewKeyAsync("ed25519")).PrivateKey,
            ["WorkingDirectory"] = "/srv/fractal",
            ["Transport"] = "SshNet",
            ["HostCertificateAuthority"] = _ca,
        });
        var unpinned = await _app.AddTargetAsync(new()
        {
            ["Name"] = "nothing-pinned",
            ["Host"] = "127.0.0.1",
            ["SshUser"] = "fractal",
            ["PrivateKey"] = (await SshServer.NewKeyAsync("ed25519")).PrivateKey,
            ["WorkingDirectory"] = "/srv/fractal",
            ["Transport"] = "SshNet",
        });

        var password = await _app.CreateUserAsync(await _app.LoginAsAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword), "vera@example.org", "Viewer");
        await using var browser = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(browser.Page, "vera@example.org", password);

        await browser.GotoInteractiveAsync("/targets");
        var row = browser.Page.GetByRole(AriaRole.Row).Filter(new() { HasText = "ca-trusted" });
        await Assertions.Expect(row.GetByText("Trusted CA", new() { Exact = true })).ToBeVisibleAsync();
        await Assertions.Expect(row.GetByText(_ca)).ToBeVisibleAsync();
        await Assertions.Expect(row.GetByText("Not pinned")).ToHaveCountAsync(0);
        var other = browser.Page.GetByRole(AriaRole.Row).Filter(new() { HasText = "nothing-pinned" });
        await Assertions.Expect(other.GetByText("Not pinned", new() { Exact = true })).ToBeVisibleAsync();

        await browser.GotoInteractiveAsync($"/targets/{id}");
        await Assertions.Expect(browser.Page.GetByText("Trusted CA", new() { Exact = true })).ToBeVisibleAsync();
        await Assertions.Expect(browser.Page.GetByText(_ca)).ToBeVisibleAsync();
        await Assertions.Expect(browser.Page.GetByText("none: host certificates signed by the trusted CA are accepted")).ToBeVisibleAsync();

        await browser.GotoInteractiveAsync("/");
        var overviewRow = browser.Page.GetByRole(AriaRole.Row).Filter(new() { HasText = "ca-trusted" });
        await Assertions.Expect(overviewRow.GetByText("Trusted CA", new() { Exact = true })).ToBeVisibleAsync();
        await Assertions.Expect(overviewRow.GetByText("Host key not pinned")).ToHaveCountAsync(0);
        await Assertions.Expect(browser.Page.GetByRole(AriaRole.Row).Filter(new() { HasText = "nothing-pinned" }).GetByText("Host key not pinned")).ToBeVisibleAsync();
        Assert.Empty(browser.Problems);

        // The API: the old fields as they were (no key pinned), and what a connection trusts beside them.
        var api = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, "vera@example.org", "viewer script", "Viewer"));
        var hostKey = (await api.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{id}", TestContext.Current.CancellationToken)).GetProperty("hostKey");
        Assert.Equal("Unpinned", hostKey.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, hostKey.GetProperty("fingerprint").ValueKind);
        Assert.Equal("HostCertificateAuthority", hostKey.GetProperty("trust").GetString());
        Assert.Equal(_ca, hostKey.GetProperty("certificateAuthority").GetString());
        var none = (await api.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{unpinned}", TestContext.Current.CancellationToken)).GetProperty("hostKey");
        Assert.Equal("None", none.GetProperty("trust").GetString());
        Assert.Equal(JsonValueKind.Null, none.GetProperty("certificateAuthority").ValueKind);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
