using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Npgsql;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.BackendAi;

/// <summary>
/// A minor Backend.AI upgrade that fails after its point of no return (an agent's service does not start once the
/// manager's database is migrated) is rolled back through the API: the manager's database comes back from the dump the
/// run took and verified before migrating it (in place: a table the newer schema added is gone, the alembic revision is
/// the old one), then every component goes back to the version upgraded from and runs. The real double: an sshd, a venv
/// upgraded by real pip and a service per host, the manager's real PostgreSQL dumped and restored by the real pg_dump
/// and pg_restore.
/// </summary>
public sealed class RollingBackABackendAiUpgradeTests(PostgresServer postgres) : IAsyncLifetime
{
    private const string OldHead = "2c3d4e5f6071";
    private const string NewHead = "3d4e5f607182";

    private readonly UpgradeConsoleApplicationFactory _app = new();
    private BackendAiCluster _cluster = default!;
    private HttpClient _api = default!;
    private string _token = "";
    private int _targetId;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        await _app.CreateFirstAdminAsync();
        _cluster = await BackendAiCluster.CreateAsync(postgres, agents: 2, version: "23.09.9", ownVenvs: true);
        _token = await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "admin", Roles.Admin);
        _api = ApiTokens.Client(_app.BaseUrl, _token);
        _targetId = await BackendAiTarget.AddAsync(_app, _api, _cluster);
    }

    public async ValueTask DisposeAsync()
    {
        _api?.Dispose();
        await _app.DisposeAsync();
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }

    [Fact]
    public async Task AFailureAfterThePointOfNoReturn_RollsBackTheManagersDatabaseFromTheRunsDump_AndEveryComponent()
    {
        var ct = TestContext.Current.CancellationToken;
        var agent = _cluster.Nodes[^1];
        _cluster.Break(agent);

        using var planned = await _api.PostAsJsonAsync($"/api/v1/targets/{_targetId}/runs", new { runbook = "backendai-minor", to = "23.09.10" }, ct);
        var plannedText = await planned.Content.ReadAsStringAsync(ct);
        Assert.True(planned.StatusCode == HttpStatusCode.Created, plannedText);
        var run = JsonDocument.Parse(plannedText).RootElement.GetProperty("run").GetProperty("id").GetInt32().ToString(CultureInfo.InvariantCulture);
        (await _api.PostAsync($"/api/v1/runs/{run}/start", null, ct)).EnsureSuccessStatusCode();
        await WaitForStateAsync(run, "WaitingForChecklist");
        var tick = await DashboardCli.RunAsync(_app.BaseUrl, _token, ["runs", "tick", run, "--all", "--note", "read"]);
        Assert.True(tick.ExitCode == 0, tick.Combined);

        await WaitForStateAsync(run, "Failed");
        var failed = await RunAsync(run);
        var stoppedAt = failed.GetProperty("phases").EnumerateArray().First(p => p.GetProperty("state").GetString() == "Failed").GetProperty("key").GetString();
        Assert.True(stoppedAt == "components", $"stopped at {stoppedAt}: {failed.GetProperty("message")}\n" + await _api.GetStringAsync($"/api/v1/runs/{run}/log", ct));
        Assert.Equal(NewHead, await RevisionAsync());
        // The dump the run took before migrating: on the manager host, as recorded.
        var backup = failed.GetProperty("backup");
        var path = backup.GetProperty("path").GetString()!;
        Assert.True(File.Exists(path), path);
        Assert.Equal(backup.GetProperty("sha256").GetString(), Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(path, ct))));
        var log = await _api.GetStringAsync($"/api/v1/runs/{run}/log", ct);
        Assert.Contains($"(alembic revision {OldHead}) into {path}", log, StringComparison.Ordinal);
        Assert.DoesNotContain(BackendAiCluster.DbPassword, log, StringComparison.Ordinal);

        // What the newer schema added (the double's revisions change only alembic_version): a restore in place drops it.
        await _cluster.ExecuteAsync("CREATE TABLE endpoints (id uuid PRIMARY KEY)");
        _cluster.Mend(agent);
        using (var rollback = await _api.PostAsJsonAsync($"/api/v1/runs/{run}/rollback", new { reason = "an agent does not start on 23.09.10" }, ct))
        {
            Assert.True(rollback.IsSuccessStatusCode, await rollback.Content.ReadAsStringAsync(ct));
        }

        await WaitForStateAsync(run, "RolledBack");
        log = await _api.GetStringAsync($"/api/v1/runs/{run}/log", ct);
        Assert.Contains("[restore] SHA-256 matches the one recorded at backup", log, StringComparison.Ordinal);
        Assert.Contains($"[restore] alembic revision before: {NewHead}", log, StringComparison.Ordinal);
        Assert.Contains($"[restore] done: alembic revision {OldHead}", log, StringComparison.Ordinal);
        Assert.Equal(OldHead, await RevisionAsync());
        Assert.False(await ExistsAsync("endpoints"));
        Assert.True(await ExistsAsync("agents"));
        foreach (var node in _cluster.Nodes)
        {
            Assert.All(await _cluster.InstalledAsync(node), p => Assert.True(p.Value == "23.09.9", $"{node.Line}: {p.Key} {p.Value}\n{log}"));
            Assert.True(_cluster.IsRunning(node), $"{node.Line} is not running\n{log}");
        }

        // The database came back before the components: the manager never ran 23.09.9 on the newer schema.
        Assert.True(log.IndexOf("[restore] done", StringComparison.Ordinal) < log.IndexOf($"[{_cluster.Manager.Address}] [install]", log.IndexOf("[restore] done", StringComparison.Ordinal), StringComparison.Ordinal));
    }

    private async Task<string?> RevisionAsync()
    {
        await using var conn = new NpgsqlConnection(_cluster.DatabaseConnection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT version_num FROM alembic_version", conn);
        return (string?)await cmd.ExecuteScalarAsync();
    }

    private async Task<bool> ExistsAsync(string table)
    {
        await using var conn = new NpgsqlConnection(_cluster.DatabaseConnection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"SELECT to_regclass('public.{table}') IS NOT NULL", conn);
        return (bool)(await cmd.ExecuteScalarAsync())!;
    }

    private Task<JsonElement> RunAsync(string run) => _api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{run}", TestContext.Current.CancellationToken);

    private Task WaitForStateAsync(string run, string state) =>
        Eventually.TrueAsync(async () => (await RunAsync(run)).GetProperty("state").GetString() == state, TimeSpan.FromMinutes(4));
}
