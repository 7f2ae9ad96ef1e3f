using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Targets;

/// <summary>
/// Issue 17, item 9: requests in a row reach a target's database through one kept forward (the same local port, so
/// Npgsql's data source is reused) over a real sshd and a real PostgreSQL; it is closed with the target's connection
/// (a re-pin, an edit, a changed host key close it) and after a short idle time, and every request still opens the
/// target through the host-key policy.
/// </summary>
public sealed class KeepingTheForwardToATargetsDatabaseTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private HttpClient _admin = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
    }

    [Fact]
    public async Task RequestsInARow_ShareOneForward_ClosedWithTheTargetsConnection_AndWhenIdle()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var fractal = await FractalTarget.CreateAsync(_app, _admin, ssh, postgres);
        await using var scope = _app.Services.CreateAsyncScope();
        var target = (await scope.ServiceProvider.GetRequiredService<TargetService>().FindAsync(fractal.TargetId, ct))!;
        var access = _app.Services.GetRequiredService<FractalAccess>();

        // Two requests at once and one after them: one local port, and each reads the database through it.
        int port;
        await using (var first = await access.OpenAsync(target, ct))
        await using (var second = await access.OpenAsync(target, ct))
        {
            port = first.Forward!.Port;
            Assert.Equal(port, second.Forward!.Port);
            Assert.Equal(10, (await first.Database.LoadUsersAsync(ct)).Count);
            Assert.Equal(10, (await second.Database.LoadUsersAsync(ct)).Count);
        }

        await using (var third = await access.OpenAsync(target, ct))
        {
            Assert.Equal(port, third.Forward!.Port);
            Assert.Equal(10, (await third.Database.LoadUsersAsync(ct)).Count);
        }

        Assert.True(await ListensAsync(port), "the kept forward closed right after its last use");

        // Closing the target's connection (as a re-pin, an edit or a changed host key do) closes the kept forward too;
        // the next request gets a working one.
        await _app.Services.GetRequiredService<TargetConnections>().CloseAsync(fractal.TargetId);
        Assert.False(await ListensAsync(port), "the forward outlived its target's connection");
        await using (var after = await access.OpenAsync(target, ct))
        {
            Assert.Equal(10, (await after.Database.LoadUsersAsync(ct)).Count);
            port = after.Forward!.Port;
        }

        // Through the API as well (a user fix), then nobody asks: the forward is closed after the idle time.
        using var api = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "forward test", "Admin"));
        var users = await api.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{fractal.TargetId}/fractal/users?q=bob", ct);
        var bob = users.GetProperty("users")[0];
        using (var patched = await api.PatchAsJsonAsync($"/api/v1/targets/{fractal.TargetId}/fractal/users/{bob.GetProperty("id").GetInt32()}",
            new { version = bob.GetProperty("version").GetString(), projectDir = "/shared/projects/bob" }, ct))
        {
            Assert.True(patched.IsSuccessStatusCode, await patched.Content.ReadAsStringAsync(ct));
        }

        Assert.True(await ListensAsync(port), "the API's request did not reuse the kept forward");
        await Eventually.TrueAsync(async () => !await ListensAsync(port), SharedForwards.IdleTimeout * 4, () => $"127.0.0.1:{port} still listens");
    }

    [Fact]
    public async Task AnEditedTarget_GetsANewForward_AndAnUnpinnedOneNone()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var fractal = await FractalTarget.CreateAsync(_app, _admin, ssh, postgres);
        await using var scope = _app.Services.CreateAsyncScope();
        var targets = scope.ServiceProvider.GetRequiredService<TargetService>();
        var access = _app.Services.GetRequiredService<FractalAccess>();
        int port;
        await using (var before = await access.OpenAsync((await targets.FindAsync(fractal.TargetId, ct))!, ct))
        {
            port = before.Forward!.Port;
        }

        // An edit changes the target's version: its kept forward is not handed out again.
        using var api = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "forward test", "Admin"));
        var current = await api.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{fractal.TargetId}", ct);
        using (var edited = await api.PatchAsJsonAsync($"/api/v1/targets/{fractal.TargetId}", new { version = current.GetProperty("version").GetString(), requireApproval = true }, ct))
        {
            Assert.True(edited.IsSuccessStatusCode, await edited.Content.ReadAsStringAsync(ct));
        }

        await using var reading = _app.Services.CreateAsyncScope();
        var target = (await reading.ServiceProvider.GetRequiredService<TargetService>().FindAsync(fractal.TargetId, ct))!;
        await using (var after = await access.OpenAsync(target, ct))
        {
            Assert.NotEqual(port, after.Forward!.Port);
            Assert.Equal(10, (await after.Database.LoadUsersAsync(ct)).Count);
        }

        Assert.False(await ListensAsync(port), "the old version's forward is still open");

        // A target whose pin is gone is refused before anything is opened, kept forward or not.
        target.HostKeyState = UpgradeConsole.Web.Targets.HostKeyState.Unpinned;
        target.PinnedKey = null;
        await Assert.ThrowsAsync<UpgradeConsole.Core.Remote.HostKeyNotPinnedException>(async () => await access.OpenAsync(target, ct));
    }

    private static async Task<bool> ListensAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync("127.0.0.1", port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _admin.Dispose();
        await _app.DisposeAsync();
    }
}
