using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Targets;

/// <summary>
/// What an admin sees when a target cannot be reached over SSH.NET: one plain sentence naming the
/// cause and what to do, the same on the page and in the API's problem detail.
/// </summary>
public sealed class ConnectionErrorsTests(SshServer ssh) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private HttpClient _api = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
        _api = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "errors", "Admin"));
    }

    [Fact]
    public async Task ANewTarget_UsesSshNet_AndTheApiSaysSo()
    {
        var id = await CreateAsync("transport-default", ssh.Host, ssh.Port, ssh.ClientKey);
        var target = await _api.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{id}", TestContext.Current.CancellationToken);
        Assert.Equal("SshNet", target.GetProperty("transport").GetString());
        Assert.False(target.GetProperty("hasKeyPassphrase").GetBoolean());
    }

    [Fact]
    public async Task NothingListening_AndAnUnknownName_AreSaidPlainly_WhenScanning()
    {
        var closed = ProcessRunner.FreePort();
        var refused = await CreateAsync("closed-port", "127.0.0.1", closed, ssh.ClientKey);
        await AssertProblemAsync($"/api/v1/targets/{refused}/host-keys", $"[127.0.0.1]:{closed} refused the connection: no SSH server listens on port {closed} there, or a firewall rejects it.");
        // The target page's scan says the same.
        var (_, scanError) = await _app.AsAsync<TargetService, (IReadOnlyList<UpgradeConsole.Core.Remote.HostKey>, string?)>(UpgradeConsoleApplicationFactory.AdminEmail, (s, a) => s.ScanAsync(refused, false, a));
        Assert.Contains($"[127.0.0.1]:{closed} refused the connection", scanError, StringComparison.Ordinal);

        var unknown = await CreateAsync("unknown-name", "no-such-host.invalid", 22, ssh.ClientKey);
        await AssertProblemAsync($"/api/v1/targets/{unknown}/host-keys", "The host name no-such-host.invalid could not be resolved (DNS). Check the spelling, or the DNS of the dashboard's host.");
    }

    [Fact]
    public async Task AKeyTheServerRefuses_IsSaidPlainly_OnThePage_AndInTheApi()
    {
        var (otherKey, _) = await SshServer.NewKeyAsync("ed25519");
        var id = await CreateAsync("refused-key", ssh.Host, ssh.Port, otherKey);
        using var pinned = await _api.PostAsJsonAsync($"/api/v1/targets/{id}/pin", new { fingerprint = await ssh.HostKeyFingerprintAsync() }, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, pinned.StatusCode);
        var expected = $"{ssh.User}@[{ssh.Host}]:{ssh.Port} refused the dashboard's key. Add its public key to ~{ssh.User}/.ssh/authorized_keys on the target, or check the SSH user.";

        // The target page's "Test connection" (through its service, as the page calls it).
        var test = await _app.AsAsync<TargetService, ConnectionTestRecord>(UpgradeConsoleApplicationFactory.AdminEmail, (s, a) => s.TestAsync(id, a));
        Assert.False(test.Succeeded);
        Assert.Equal(expected, test.Error);
        await AssertProblemAsync($"/api/v1/targets/{id}/fractal/users", expected);
    }

    [Fact]
    public async Task OverTheSystemOpenSshClient_AKeyTheServerRefuses_IsSaidPlainly_OnThePage_AndInTheApi()
    {
        // The System OpenSSH client takes a key file (never a key stored in the dashboard).
        var (otherKey, _) = await SshServer.NewKeyAsync("ed25519");
        var keyFile = Path.Combine(Directory.CreateTempSubdirectory("uc-other-key-").FullName, "id_ed25519");
        File.WriteAllText(keyFile, otherKey);
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var id = await CreateAsync("openssh-refused-key", ssh.Host, ssh.Port, null, "OpenSsh", keyFile);
        using var pinned = await _api.PostAsJsonAsync($"/api/v1/targets/{id}/pin", new { fingerprint = await ssh.HostKeyFingerprintAsync() }, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, pinned.StatusCode);
        var expected = $"{ssh.User}@{ssh.Host} refused the dashboard's key. Add its public key to ~{ssh.User}/.ssh/authorized_keys on the target, or check the SSH user.";
        var test = await _app.AsAsync<TargetService, ConnectionTestRecord>(UpgradeConsoleApplicationFactory.AdminEmail, (s, a) => s.TestAsync(id, a));
        Assert.False(test.Succeeded);
        Assert.Equal(expected, test.Error);
        await AssertProblemAsync($"/api/v1/targets/{id}/fractal/users", expected);
        Directory.Delete(Path.GetDirectoryName(keyFile)!, recursive: true);
    }

    private async Task<int> CreateAsync(string name, string host, int port, string? privateKey, string? transport = null, string? keyFile = null)
    {
        var fields = new Dictionary<string, object?>
        {
            ["name"] = name,
            ["host"] = host,
            ["port"] = port,
            ["sshUser"] = ssh.User,
            ["authMethod"] = keyFile is null ? "StoredKey" : "KeyFile",
            ["workingDirectory"] = "/srv/fractal",
        };
        if (keyFile is null)
        {
            fields["privateKey"] = privateKey;
        }
        else
        {
            fields["keyFilePath"] = keyFile;
        }

        if (transport is not null)
        {
            // Left out otherwise: a client from before the choice existed gets the default.
            fields["transport"] = transport;
        }

        using var created = await _api.PostAsJsonAsync("/api/v1/targets", fields, TestContext.Current.CancellationToken);
        var text = await created.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(created.StatusCode == HttpStatusCode.Created, text);
        return JsonDocument.Parse(text).RootElement.GetProperty("id").GetInt32();
    }

    private async Task AssertProblemAsync(string path, string detail)
    {
        using var response = await _api.GetAsync(path, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.BadGateway, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(detail, JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString());
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
