using System.Text;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Notifications;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Notifications;

/// <summary>
/// The two notification pages in Debian's Chromium: a person saves which events reach them (every target, and one
/// target differently); an Admin adds webhooks to a target, and no secret of one ever comes back to the browser (not
/// in the page's HTML, not in any frame of the circuit's WebSocket) except a generated one shown once; Operators and
/// Viewers cannot open the target's channels, and an Admin demoted while the page is open is refused at the next action.
/// </summary>
public sealed class ManagingNotificationsInTheBrowserTests(Chromium chromium) : IAsyncLifetime
{
    // The circuit's own re-check is pushed out of the way: only the service can refuse the demoted Admin.
    private readonly UpgradeConsoleApplicationFactory _app = new UpgradeConsoleApplicationFactory()
        .WithSetting("UpgradeConsole:CircuitRevalidationInterval", "01:00:00");

    private HttpClient _admin = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
    }

    [Fact]
    public async Task APerson_SavesWhichEventsReachThem_ForEveryTargetAndForOneTarget()
    {
        var password = await _app.CreateUserAsync(_admin, "vera@example.org", "Viewer");
        var (_, targetId) = await RunSeed.AddPlannedRunAsync(_app.Services);
        await using var vera = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = vera.Page;
        await SigningInTests.SignInAsync(page, "vera@example.org", password);
        await vera.GotoInteractiveAsync("/account/notifications");

        var every = page.GetByTestId("event-choice").Nth(0);
        await every.GetByText("Run succeeded", new() { Exact = true }).ClickAsync();
        await every.GetByText("Rolled back", new() { Exact = true }).ClickAsync();
        await page.ClickAsync("#save-every-target");
        await Assertions.Expect(page.Locator(".mud-snackbar")).ToContainTextAsync("Saved.");

        await page.Locator("#preference-target").SelectOptionAsync(targetId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var one = page.GetByTestId("event-choice").Nth(1);
        await one.GetByText("Host key changed", new() { Exact = true }).ClickAsync();
        await page.ClickAsync("#save-for-target");
        await Assertions.Expect(page.GetByTestId("preference-row")).ToContainTextAsync("Host key changed");

        var saved = await PreferencesOfAsync("vera@example.org");
        Assert.Equal(NotificationEvents.RunSucceeded | NotificationEvents.RolledBack, saved.Single(p => p.TargetId is null).Events);
        Assert.Equal(NotificationEvents.HostKeyChanged, saved.Single(p => p.TargetId == targetId).Events);

        // A fresh load shows what was saved.
        await page.ReloadAsync();
        await vera.WaitForInteractiveAsync();
        var reloaded = page.GetByTestId("event-choice").Nth(0);
        await Assertions.Expect(reloaded.GetByRole(AriaRole.Checkbox, new() { Name = "Run succeeded" })).ToBeCheckedAsync();
        await Assertions.Expect(reloaded.GetByRole(AriaRole.Checkbox, new() { Name = "Rolled back" })).ToBeCheckedAsync();
        await Assertions.Expect(reloaded.GetByRole(AriaRole.Checkbox, new() { Name = "Run started" })).Not.ToBeCheckedAsync();

        // Back to "as for every target" for the one target.
        await page.GetByTestId("preference-row").GetByRole(AriaRole.Button, new() { Name = "As for every target" }).ClickAsync();
        await Assertions.Expect(page.GetByTestId("preference-row")).ToHaveCountAsync(0);
        Assert.DoesNotContain(await PreferencesOfAsync("vera@example.org"), p => p.TargetId == targetId);
        Assert.True(vera.Problems.Count == 0, string.Join('\n', vera.Problems));
    }

    [Fact]
    public async Task AnAdmin_AddsWebhooks_AndTheirSecretsNeverComeBackToTheBrowser()
    {
        const string typedSecret = "typed-secret-of-the-chat-hook-0123";
        var (_, targetId) = await RunSeed.AddPlannedRunAsync(_app.Services);
        await using var admin = await chromium.NewSessionAsync(_app.BaseUrl);
        var page = admin.Page;
        var received = new List<byte[]>();
        page.WebSocket += (_, socket) => socket.FrameReceived += (_, frame) =>
        {
            lock (received)
            {
                received.Add(frame.Binary ?? Encoding.UTF8.GetBytes(frame.Text ?? ""));
            }
        };
        await SigningInTests.SignInAsync(page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        var path = $"/targets/{targetId}/notifications";
        await admin.GotoInteractiveAsync(path);

        // A webhook with the secret the receiver already has.
        await page.FillAsync("#channel-name", "chat");
        await page.FillAsync("#channel-address", "https://chat.example.org/hooks/upgrades");
        await page.FillAsync("#channel-secret", typedSecret);
        await page.ClickAsync("#add-channel");
        var chat = page.GetByTestId("channel-row").Filter(new() { HasText = "chat" });
        await Assertions.Expect(chat).ToContainTextAsync("https://chat.example.org/hooks/upgrades");
        await Assertions.Expect(page.GetByTestId("webhook-secret")).ToHaveCountAsync(0);
        await Assertions.Expect(page.Locator("#channel-secret")).ToHaveValueAsync("");

        // A webhook without one: the generated secret is shown once, to copy.
        await page.FillAsync("#channel-name", "pager");
        await page.FillAsync("#channel-address", "https://pager.example.org/in");
        await page.ClickAsync("#add-channel");
        await Assertions.Expect(page.GetByTestId("channel-row").Filter(new() { HasText = "pager" })).ToBeVisibleAsync();
        var generated = (await page.GetByTestId("webhook-secret").TextContentAsync())!.Trim();
        Assert.Matches("^[0-9a-f]{64}$", generated);

        // Stored sealed, and they are the secrets deliveries sign with.
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var channels = await scope.ServiceProvider.GetRequiredService<AppDbContext>().Set<NotificationChannel>().AsNoTracking()
                .Where(c => c.TargetId == targetId).OrderBy(c => c.Id).ToListAsync(TestContext.Current.CancellationToken);
            var secrets = scope.ServiceProvider.GetRequiredService<NotificationComposer>().Secrets;
            Assert.Equal([typedSecret, generated], channels.Select(c => secrets.Unprotect(c.ProtectedSecret!)));
            Assert.All(channels, c => Assert.DoesNotContain(c.Name == "chat" ? typedSecret : generated, c.ProtectedSecret!, StringComparison.Ordinal));
        }

        // The typed secret never came back, in any frame of the circuit.
        Assert.DoesNotContain(Frames(received), f => f.Contains(typedSecret, StringComparison.Ordinal));

        // A fresh load: neither secret is in the page or in anything its circuit sends.
        lock (received)
        {
            received.Clear();
        }

        var response = await page.ReloadAsync();
        var html = await response!.TextAsync();
        await admin.WaitForInteractiveAsync();
        await Assertions.Expect(page.GetByTestId("channel-row")).ToHaveCountAsync(2);
        await Assertions.Expect(page.GetByTestId("webhook-secret")).ToHaveCountAsync(0);
        var shown = await page.ContentAsync();
        foreach (var secret in new[] { typedSecret, generated })
        {
            Assert.DoesNotContain(secret, html, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, shown, StringComparison.Ordinal);
            Assert.DoesNotContain(Frames(received), f => f.Contains(secret, StringComparison.Ordinal));
        }

        Assert.NotEmpty(Frames(received));
        Assert.True(admin.Problems.Count == 0, string.Join('\n', admin.Problems));
    }

    [Fact]
    public async Task OperatorsAndViewers_CannotManageTheChannels_AndADemotedAdminIsRefusedAtTheNextAction()
    {
        var (_, targetId) = await RunSeed.AddPlannedRunAsync(_app.Services);
        var path = $"/targets/{targetId}/notifications";
        foreach (var role in new[] { "Operator", "Viewer" })
        {
            var email = $"{role.ToLowerInvariant()}-pages@example.org";
            var password = await _app.CreateUserAsync(_admin, email, role);
            await using var session = await chromium.NewSessionAsync(_app.BaseUrl);
            await SigningInTests.SignInAsync(session.Page, email, password);
            await session.Page.GotoAsync(path);
            Assert.Contains("/account/access-denied", session.Page.Url, StringComparison.Ordinal);
            await Assertions.Expect(session.Page.Locator("#add-channel")).ToHaveCountAsync(0);

            // The page's service refuses them too (what a page's action calls).
            await Assert.ThrowsAsync<AccessDeniedException>(() => _app.AsAsync<NotificationSettings, ChannelResult>(email, (s, actor) =>
                s.CreateAsync(targetId, ChannelKind.Webhook, new ChannelInput("x", "https://x.example.org/", ["run.succeeded"]), actor, CancellationToken.None)));
            await Assert.ThrowsAsync<AccessDeniedException>(() => _app.AsAsync<NotificationSettings, IReadOnlyList<NotificationChannel>>(email, (s, actor) =>
                s.ChannelsAsync(targetId, actor, CancellationToken.None)));
        }

        // An Admin's open page outlives their demotion; the next action does not.
        var adminPassword = await _app.CreateUserAsync(_admin, "second-admin@example.org", "Admin");
        await using var second = await chromium.NewSessionAsync(_app.BaseUrl);
        await SigningInTests.SignInAsync(second.Page, "second-admin@example.org", adminPassword);
        await second.GotoInteractiveAsync(path);
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var accounts = scope.ServiceProvider.GetRequiredService<UserAdministration>();
            var id = (await accounts.ListAsync()).Single(u => u.Email == "second-admin@example.org").Id;
            Assert.True((await accounts.SetRoleAsync(id, "Operator")).Succeeded);
        }

        await second.Page.FillAsync("#channel-name", "sneaky");
        await second.Page.FillAsync("#channel-address", "https://sneaky.example.org/in");
        await second.Page.ClickAsync("#add-channel");
        await Assertions.Expect(second.Page.GetByTestId("channel-error")).ToContainTextAsync("Your role (Operator) does not allow this");
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            Assert.False(await scope.ServiceProvider.GetRequiredService<AppDbContext>().Set<NotificationChannel>().AnyAsync(c => c.TargetId == targetId, TestContext.Current.CancellationToken));
        }

        Assert.DoesNotContain(await _app.AuditEventsAsync(), e => e.Action == "notification.channel-create");
    }

    private async Task<List<NotificationPreference>> PreferencesOfAsync(string email) =>
        (await _app.AsAsync<NotificationSettings, IReadOnlyList<NotificationPreference>>(email, (s, actor) => s.PreferencesAsync(actor, CancellationToken.None))).ToList();

    private static List<string> Frames(List<byte[]> received)
    {
        lock (received)
        {
            // Blazor's render batches carry strings as UTF-8: searching the bytes as text finds them.
            return received.Select(Encoding.UTF8.GetString).ToList();
        }
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
