using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.BackendAi;

/// <summary>
/// An Admin pastes a Backend.AI cluster's hosts on the target page (a bad line first: refused, nothing saved), looks
/// at the cluster, and sees which host differs from the cluster's one version and the sessions per agent; a Viewer
/// sees the same hosts but no form. Chromium against the real double (sshd per host, pip venvs, PostgreSQL).
/// </summary>
public sealed class BackendAiClusterInTheBrowserTests(Chromium chromium, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private BackendAiCluster _cluster = default!;
    private BrowserSession _admin = default!;
    private int _targetId;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
        _cluster = await BackendAiCluster.CreateAsync(postgres);
        _targetId = await _app.AddTargetAsync(new()
        {
            ["Name"] = "bai-browser",
            ["Product"] = "backend.ai",
            ["Host"] = _cluster.Manager.Ssh.Host,
            ["Port"] = _cluster.Manager.Ssh.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["SshUser"] = _cluster.User,
            ["PrivateKey"] = _cluster.ClientKey,
            ["WorkingDirectory"] = "/opt/backend.ai",
        });
        _admin = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(_admin.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
    }

    [Fact]
    public async Task Admin_PastesHosts_AndSeesTheVersionSpread()
    {
        var page = _admin.Page;
        await _cluster.PlantSessionsAsync();
        await _admin.GotoInteractiveAsync($"/targets/{_targetId}");
        await Assertions.Expect(page.GetByTestId("cluster-empty")).ToBeVisibleAsync();

        var withKeys = await _cluster.HostListWithFingerprintsAsync();
        await page.FillAsync("#paste-hosts", withKeys + "\nagent nobody@127.0.0.1:99999");
        await page.FillAsync("#host-python-env", _cluster.PythonEnvTemplate);
        await page.FillAsync("#host-config-path", _cluster.ConfigPathTemplate);
        await page.FillAsync("#host-status", _cluster.StatusCommandTemplate);
        await page.ClickAsync("#add-hosts");
        await Assertions.Expect(page.GetByTestId("paste-error")).ToContainTextAsync($"Line {_cluster.Nodes.Count + 1} (\"agent nobody@127.0.0.1:99999\"): '99999' is not a port");
        await Assertions.Expect(page.GetByTestId("cluster-empty")).ToBeVisibleAsync();

        await page.FillAsync("#paste-hosts", withKeys);
        await page.ClickAsync("#add-hosts");
        var rows = page.Locator("[data-testid=cluster-hosts] tbody tr");
        await Assertions.Expect(rows).ToHaveCountAsync(_cluster.Nodes.Count);
        await Assertions.Expect(page.GetByTestId("paste-error")).ToHaveCountAsync(0);
        var fingerprint = await _cluster.Nodes[2].Ssh.HostKeyFingerprintAsync();
        await Assertions.Expect(page.Locator($"tr[data-address='{_cluster.Nodes[2].Address}'] [data-testid=host-key]")).ToContainTextAsync(fingerprint);

        await page.ClickAsync("#discover");
        await Assertions.Expect(page.GetByTestId("version-spread")).ToHaveTextAsync("2 versions: 23.09.10 on 6 hosts, 23.09.9 on 1 host", new() { Timeout = 60_000 });
        var behind = _cluster.Nodes[^1];
        await Assertions.Expect(page.Locator($"tr[data-address='{behind.Address}']")).ToHaveAttributeAsync("data-differs", "true");
        await Assertions.Expect(page.Locator($"tr[data-address='{behind.Address}'] [data-testid=host-version]")).ToContainTextAsync("23.09.9 (differs)");
        await Assertions.Expect(page.Locator("tr[data-differs=true]")).ToHaveCountAsync(1);
        await Assertions.Expect(page.Locator($"tr[data-address='{_cluster.Nodes[2].Address}'] [data-testid=host-sessions]")).ToHaveTextAsync("2");
        await Assertions.Expect(page.GetByTestId("running-sessions")).ToHaveTextAsync("3 sessions running");
        await Assertions.Expect(page.GetByTestId("alembic-revision")).ToHaveTextAsync($"alembic {BackendAiCluster.Revision}");
        await Assertions.Expect(page.Locator("[data-testid=discovered-facts] dd[data-label='Version spread']")).ToContainTextAsync("23.09.9 on 1 host");

        // A Viewer reads the same hosts, without the form.
        using var adminClient = await _app.LoginAsAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        var password = await _app.CreateUserAsync(adminClient, "viewer@example.org", Roles.Viewer);
        await using var viewer = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(viewer.Page, "viewer@example.org", password);
        await viewer.GotoInteractiveAsync($"/targets/{_targetId}");
        await Assertions.Expect(viewer.Page.Locator("[data-testid=cluster-hosts] tbody tr")).ToHaveCountAsync(_cluster.Nodes.Count);
        await Assertions.Expect(viewer.Page.Locator("#paste-hosts")).ToHaveCountAsync(0);
        Assert.Empty(_admin.Problems);
    }

    public async ValueTask DisposeAsync()
    {
        if (_admin is not null)
        {
            await _admin.DisposeAsync();
        }

        await _app.DisposeAsync();
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }
}
