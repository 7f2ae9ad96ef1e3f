using System.Text.RegularExpressions;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Targets;

/// <summary>
/// An Admin adds a Fractal target on the interactive page, checks and pins its host key (confirmed in a
/// dialog), tests the connection, looks at what runs there and deletes it: against the real sshd and a
/// Fractal host double.
/// </summary>
public sealed class TargetInTheBrowserTests(Chromium chromium, SshServer ssh) : IAsyncLifetime
{
    private const string Password = "pg-secret-Zq9!";
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private RemoteSession _remote = default!;
    private FractalHost _fractal = default!;
    private BrowserSession _admin = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
        _remote = new RemoteSession(ssh);
        _fractal = await FractalHost.CreateAsync(_remote.Shell, "2.16.6", $"""
            # Fractal configuration
            JWT_SECRET_KEY='jwt secret value'
            FRACTAL_RUNNER_BACKEND=slurm
            POSTGRES_DB=fractal
            POSTGRES_PASSWORD={Password}
            FRACTAL_TASKS_PYTHON_DEFAULT_VERSION="3.11"
            FRACTAL_SLURM_WORKER_PYTHON=/does/not/exist/python
            """);
        _admin = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(_admin.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
    }

    [Fact]
    public async Task Admin_AddsPinsTestsAndDiscoversATarget()
    {
        var page = _admin.Page;
        await _admin.GotoInteractiveAsync("/targets");
        await Assertions.Expect(page.GetByTestId("targets-empty")).ToBeVisibleAsync();
        await page.ClickAsync("#add-target");
        await page.WaitForAddressAsync(new Regex("/targets/new$"));

        // The form's rules are shown per field, before anything is sent to the service: the required
        // fields first, then the rules that read several fields.
        await page.ClickAsync("#save-target");
        await Assertions.Expect(page.Locator("#target-form")).ToContainTextAsync("Give the target a name.");
        await Assertions.Expect(page.Locator("#target-form")).ToContainTextAsync("Enter the host name or address.");
        await page.FillAsync("#name", "fractal-test");
        await page.FillAsync("#host", "not a host!");
        await page.FillAsync("#ssh-user", ssh.User);
        await page.FillAsync("#workdir", "relative/dir");
        await page.ClickAsync("#save-target");
        await Assertions.Expect(page.Locator("#target-form")).ToContainTextAsync("This is not a host name or IP address.");
        await Assertions.Expect(page.Locator("#target-form")).ToContainTextAsync("Use an absolute path, or one starting with ~/.");
        Assert.Equal("/targets/new", new Uri(page.Url).AbsolutePath);

        await page.FillAsync("#name", "fractal-test");
        await page.FillAsync("#host", ssh.Host);
        await page.FillAsync("#port", ssh.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await page.FillAsync("#ssh-user", ssh.User);
        await page.FillAsync("#private-key", ssh.ClientKey);
        await page.FillAsync("#workdir", _fractal.Directory);
        await page.FillAsync("#python", _fractal.Python);
        await page.FillAsync("#server-url", _fractal.ServerUrl);
        await page.FillAsync("#stop", _fractal.StopCommand);
        await page.FillAsync("#start", _fractal.StartCommand);
        await page.FillAsync("#status", _fractal.StatusCommand);
        await _admin.ScreenshotAsync("target-new");
        await page.ClickAsync("#save-target");
        await page.WaitForAddressAsync(new Regex("/targets/[0-9]+$"));
        await Assertions.Expect(page.GetByTestId("hostkey-state").First).ToHaveTextAsync("Not pinned");

        // Unpinned: the dashboard refuses to connect at all.
        await page.ClickAsync("#test-connection");
        await Assertions.Expect(page.GetByTestId("test-error")).ToContainTextAsync("No host key is pinned");

        // The offered key is the server's real one; pin it after confirming in the dialog.
        await page.ClickAsync("#scan-keys");
        var fingerprint = await ssh.HostKeyFingerprintAsync();
        var offered = page.Locator($"[data-testid=offered-key][data-fingerprint='{fingerprint}']");
        await Assertions.Expect(offered).ToBeVisibleAsync();
        await _admin.ScreenshotAsync("target-scan");
        await offered.GetByTestId("pin-key").ClickAsync();
        var dialog = page.Locator(".mud-dialog");
        await Assertions.Expect(dialog).ToContainTextAsync("Only do this if it matches the fingerprint on the server");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Pin", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByTestId("pinned-fingerprint")).ToContainTextAsync(fingerprint);
        await Assertions.Expect(page.GetByTestId("hostkey-state").First).ToHaveTextAsync("Pinned");
        await Assertions.Expect(page.Locator(".mud-snackbar", new() { HasText = $"Pinned {fingerprint}" })).ToBeVisibleAsync();

        await page.ClickAsync("#test-connection");
        await Assertions.Expect(page.GetByTestId("remote-user")).ToHaveTextAsync(ssh.User);
        await Assertions.Expect(page.GetByTestId("uname")).ToContainTextAsync("Linux");
        await Assertions.Expect(page.GetByTestId("rtt")).ToContainTextAsync("ms");

        await page.ClickAsync("#discover");
        await Assertions.Expect(page.GetByTestId("installed-version")).ToContainTextAsync("2.16.6");
        await Assertions.Expect(page.GetByTestId("alive")).ToContainTextAsync("alive, version 2.16.6");
        await Assertions.Expect(page.Locator("[data-testid=env-variables] tr[data-name=FRACTAL_RUNNER_BACKEND]")).ToContainTextAsync("slurm");
        await Assertions.Expect(page.Locator("[data-testid=env-variables] tr[data-name=POSTGRES_PASSWORD]")).ToContainTextAsync("••••");
        await _admin.ScreenshotAsync("target-discovered");

        // Secrets never reach the browser: not the DB password, not the JWT secret, not the private key.
        var html = await page.ContentAsync();
        Assert.DoesNotContain(Password, html, StringComparison.Ordinal);
        Assert.DoesNotContain("jwt secret value", html, StringComparison.Ordinal);
        await page.ClickAsync("#edit-target");
        await page.WaitForAddressAsync(new Regex("/targets/[0-9]+/edit$"));
        await Assertions.Expect(page.GetByTestId("stored-key")).ToContainTextAsync("SHA256:");
        var edit = await page.ContentAsync();
        Assert.DoesNotContain(ssh.ClientKey.Split('\n')[1], edit, StringComparison.Ordinal);
        Assert.Equal("", await page.InputValueAsync("#private-key"));

        // The list shows the target with its state; the page as first served is the same list.
        await _admin.GotoInteractiveAsync("/targets");
        var row = page.Locator("[data-testid=target-row][data-name='fractal-test']");
        await Assertions.Expect(row.GetByTestId("hostkey-state")).ToHaveTextAsync("Pinned");
        await Assertions.Expect(row.GetByTestId("target-installed")).ToContainTextAsync("2.16.6");

        // Deleting asks first; cancelling keeps the target, confirming removes it.
        await row.Locator("a").First.ClickAsync();
        await page.WaitForAddressAsync(new Regex("/targets/[0-9]+$"));
        await page.ClickAsync("#delete-target");
        await page.Locator(".mud-dialog").GetByRole(AriaRole.Button, new() { Name = "Cancel", Exact = true }).ClickAsync();
        await Assertions.Expect(page.Locator(".mud-dialog")).ToHaveCountAsync(0);
        await page.ClickAsync("#delete-target");
        await page.Locator(".mud-dialog").GetByRole(AriaRole.Button, new() { Name = "Delete", Exact = true }).ClickAsync();
        await page.WaitForAddressAsync(new Regex("/targets$"));
        await Assertions.Expect(page.GetByTestId("targets-empty")).ToBeVisibleAsync();
        var deleted = Assert.Single(await _app.AuditEventsAsync(), e => e.Action == "target.delete");
        Assert.Equal(UpgradeConsoleApplicationFactory.AdminEmail, deleted.Actor);
        Assert.True(_admin.Problems.Count == 0, string.Join('\n', _admin.Problems));
    }

    public async ValueTask DisposeAsync()
    {
        await _admin.DisposeAsync();
        await _fractal.DisposeAsync();
        await _remote.DisposeAsync();
        await _app.DisposeAsync();
    }
}
