using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using UpgradeConsole.Core.Accounts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.BackendAi;

/// <summary>
/// A Backend.AI cluster target through the API: hosts pasted (a bad line saves nothing; a Viewer may only read),
/// each pinned, discovery on every host (real sshd per host, real pip venvs, the manager's real PostgreSQL), the
/// version spread, and the workload check that fails while compute sessions run.
/// </summary>
public sealed class DiscoveringABackendAiClusterTests(PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private BackendAiCluster _cluster = default!;
    private HttpClient _admin = default!;
    private HttpClient _viewer = default!;
    private int _targetId;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
        await _app.SignedInClientAsync(Roles.Viewer);
        _cluster = await BackendAiCluster.CreateAsync(postgres);
        _admin = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "admin", Roles.Admin));
        _viewer = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, "viewer@example.org", "viewer", Roles.Viewer));
        _targetId = await _app.AddTargetAsync(new()
        {
            ["Name"] = "bai-" + Guid.NewGuid().ToString("N")[..8],
            ["Product"] = "backend.ai",
            ["Host"] = _cluster.Manager.Ssh.Host,
            ["Port"] = _cluster.Manager.Ssh.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["SshUser"] = _cluster.User,
            ["PrivateKey"] = _cluster.ClientKey,
            ["WorkingDirectory"] = "/opt/backend.ai",
        });
    }

    private object Paste(string text) => new
    {
        text,
        pythonEnv = _cluster.PythonEnvTemplate,
        configPath = _cluster.ConfigPathTemplate,
        statusCommand = _cluster.StatusCommandTemplate,
    };

    [Fact]
    public async Task APastedListWithABadLine_SavesNothing_AndAViewerOnlyReads()
    {
        var bad = _cluster.HostList + "\nagent " + _cluster.User + "@127.0.0.1:notaport";
        var refused = await _admin.PostAsJsonAsync($"/api/v1/targets/{_targetId}/hosts/paste", Paste(bad));
        var body = await refused.Content.ReadAsStringAsync();
        Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, body);
        Assert.Contains($"Line {_cluster.Nodes.Count + 1} (", body, StringComparison.Ordinal);
        Assert.Contains("'notaport' is not a port", body, StringComparison.Ordinal);
        Assert.Empty(await _viewer.GetFromJsonAsync<JsonElement[]>($"/api/v1/targets/{_targetId}/hosts") ?? []);

        var forbidden = await _viewer.PostAsJsonAsync($"/api/v1/targets/{_targetId}/hosts/paste", Paste(_cluster.HostList));
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);

        // A fingerprint the host does not present: nothing saved either.
        var wrong = await _admin.PostAsJsonAsync($"/api/v1/targets/{_targetId}/hosts/paste", Paste($"{_cluster.Nodes[0].Line} SHA256:{new string('A', 43)}"));
        Assert.Equal(HttpStatusCode.Conflict, wrong.StatusCode);
        Assert.Empty(await _viewer.GetFromJsonAsync<JsonElement[]>($"/api/v1/targets/{_targetId}/hosts") ?? []);

        // Unpinned hosts are listed but nothing connects to them.
        var added = await _admin.PostAsJsonAsync($"/api/v1/targets/{_targetId}/hosts/paste", Paste(_cluster.HostList));
        Assert.True(added.StatusCode == HttpStatusCode.Created, await added.Content.ReadAsStringAsync());
        var hosts = await _viewer.GetFromJsonAsync<JsonElement[]>($"/api/v1/targets/{_targetId}/hosts");
        Assert.Equal(_cluster.Nodes.Count, hosts!.Length);
        Assert.All(hosts, h => Assert.Equal("Unpinned", h.GetProperty("hostKeyState").GetString()));
        var found = await (await _admin.PostAsync($"/api/v1/targets/{_targetId}/cluster/discover", null)).Content.ReadFromJsonAsync<JsonElement>();
        Assert.All(found.GetProperty("hosts").EnumerateArray(), h => Assert.Contains("No host key is pinned", h.GetProperty("error").GetString(), StringComparison.Ordinal));

        // Pinned one by one: the Admin scans, compares and pins.
        var first = hosts[0].GetProperty("id").GetInt32();
        var keys = await _admin.GetFromJsonAsync<JsonElement[]>($"/api/v1/targets/{_targetId}/hosts/{first}/host-keys");
        var fingerprint = await _cluster.Nodes[0].Ssh.HostKeyFingerprintAsync();
        Assert.Contains(keys!, k => k.GetProperty("fingerprint").GetString() == fingerprint);
        var pinned = await _admin.PostAsJsonAsync($"/api/v1/targets/{_targetId}/hosts/{first}/pin", new { fingerprint });
        Assert.True(pinned.IsSuccessStatusCode, await pinned.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Forbidden, (await _viewer.PostAsJsonAsync($"/api/v1/targets/{_targetId}/hosts/{first}/pin", new { fingerprint })).StatusCode);
        var events = (await _app.AuditEventsAsync()).Select(e => e.Action).ToList();
        Assert.Contains("cluster-host.paste", events);
        Assert.Contains("cluster-host.pin", events);

        // Backend.AI's runbooks do not rehearse: a target of it cannot require a passing rehearsal (the form and the API
        // share this refusal), rather than keep a requirement its preflight would never check.
        var rehearsed = await _app.AsAsync<TargetService, TargetResult>(UpgradeConsoleApplicationFactory.AdminEmail, (s, a) => s.CreateAsync(new TargetForm
        {
            Name = "bai-rehearsed",
            Product = "backend.ai",
            Host = _cluster.Manager.Ssh.Host,
            Port = _cluster.Manager.Ssh.Port,
            SshUser = _cluster.User,
            PrivateKey = _cluster.ClientKey,
            WorkingDirectory = "/opt/backend.ai",
            RequirePassingRehearsalWithinDays = 7,
        }, a));
        Assert.False(rehearsed.Succeeded);
        Assert.Equal(["Backend.AI cluster runbooks do not rehearse, so a target of this product cannot require a passing rehearsal: leave that setting empty."], rehearsed.Errors);
    }

    [Fact]
    public async Task Discovery_ShowsTheVersionSpreadAndSessionsPerAgent_AndTheWorkloadCheckFailsUntilTheyStop_AsDoesARehearsalRequiredEarlier()
    {
        var added = await _admin.PostAsJsonAsync($"/api/v1/targets/{_targetId}/hosts/paste", Paste(await _cluster.HostListWithFingerprintsAsync()));
        Assert.True(added.StatusCode == HttpStatusCode.Created, await added.Content.ReadAsStringAsync());
        var planted = await _cluster.PlantSessionsAsync();
        _cluster.StopService(_cluster.Nodes[1]);

        var response = await _admin.PostAsync($"/api/v1/targets/{_targetId}/cluster/discover", null);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        var found = JsonDocument.Parse(text).RootElement;
        Assert.Equal(BackendAiCluster.Revision, found.GetProperty("alembicRevision").GetString());
        Assert.Equal(BackendAiCluster.Version, found.GetProperty("spread").GetProperty("majority").GetString());
        Assert.Equal(JsonValueKind.Null, found.GetProperty("databaseError").ValueKind);
        var hosts = found.GetProperty("hosts").EnumerateArray().ToList();
        Assert.Equal(_cluster.Nodes.Count, hosts.Count);
        foreach (var node in _cluster.Nodes)
        {
            var host = hosts.Single(h => h.GetProperty("address").GetString() == node.Address);
            Assert.True(host.GetProperty("error").ValueKind == JsonValueKind.Null, host.ToString());
            Assert.Equal(node.Version, host.GetProperty("version").GetString());
            Assert.Equal(node.Version != BackendAiCluster.Version, host.GetProperty("differs").GetBoolean());
            Assert.Equal(node != _cluster.Nodes[1], host.GetProperty("findings").GetProperty("serviceRunning").GetBoolean());
            if (node.AgentId is { } agent)
            {
                Assert.Equal(agent, host.GetProperty("findings").GetProperty("agentId").GetString());
                Assert.Equal(planted.GetValueOrDefault(agent), host.GetProperty("sessions").GetInt32());
            }
        }

        var manager = hosts.Single(h => h.GetProperty("address").GetString() == _cluster.Manager.Address).GetProperty("findings").GetProperty("packages");
        Assert.Equal(BackendAiCluster.Version, manager.GetProperty("backend.ai-storage-proxy").GetString());
        // The database password is read on the host to connect, never stored or shown.
        Assert.DoesNotContain("Secret", text, StringComparison.Ordinal);
        var stored = await (await _viewer.GetAsync($"/api/v1/targets/{_targetId}/cluster")).Content.ReadAsStringAsync();
        Assert.Contains(BackendAiCluster.Revision, stored, StringComparison.Ordinal);
        Assert.DoesNotContain("Secret", stored, StringComparison.Ordinal);

        var preflight = await Preflight();
        var workload = preflight.Single(c => c.GetProperty("id").GetString() == "backendai.no-sessions");
        Assert.Equal("Fail", workload.GetProperty("status").GetString());
        Assert.Contains("3 session(s) occupy agents: i-agent01: 2, i-agent02: 1, i-agent03: 1", workload.GetProperty("explanation").GetString(), StringComparison.Ordinal);
        var spread = preflight.Single(c => c.GetProperty("id").GetString() == "backendai.one-version");
        Assert.Equal("Fail", spread.GetProperty("status").GetString());
        Assert.Contains(_cluster.Nodes[^1].Address, spread.GetProperty("explanation").GetString(), StringComparison.Ordinal);

        await _cluster.TerminateSessionsAsync();
        preflight = await Preflight();
        workload = preflight.Single(c => c.GetProperty("id").GetString() == "backendai.no-sessions");
        Assert.Equal("Pass", workload.GetProperty("status").GetString());
        Assert.DoesNotContain(preflight, c => c.GetProperty("id").GetString() == "rehearsal.recent");

        // A passing rehearsal required by an earlier version, before the form refused it for Backend.AI: nothing can meet
        // it, so the preflight fails closed and says how to clear it.
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            await db.Targets.Where(t => t.Id == _targetId)
                .ExecuteUpdateAsync(s => s.SetProperty(t => t.RequirePassingRehearsalWithin, TimeSpan.FromDays(7)), TestContext.Current.CancellationToken);
        }

        var rehearsal = (await Preflight()).Single(c => c.GetProperty("id").GetString() == "rehearsal.recent");
        Assert.Equal("Fail", rehearsal.GetProperty("status").GetString());
        Assert.Contains("Backend.AI runbooks do not rehearse. Clear the setting on the target's edit page.", rehearsal.GetProperty("explanation").GetString(), StringComparison.Ordinal);
    }

    private async Task<List<JsonElement>> Preflight()
    {
        var response = await _admin.PostAsync($"/api/v1/targets/{_targetId}/preflight", null);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return [.. JsonDocument.Parse(text).RootElement.GetProperty("checks").EnumerateArray()];
    }

    public async ValueTask DisposeAsync()
    {
        _admin?.Dispose();
        _viewer?.Dispose();
        await _app.DisposeAsync();
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }
}
