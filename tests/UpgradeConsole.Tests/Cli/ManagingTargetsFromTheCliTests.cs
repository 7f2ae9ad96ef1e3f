using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Cli;

/// <summary>
/// `targets list|show|add|edit|remove|scan|pin` as a real process against a real dashboard and a real sshd,
/// and the API under them: PATCH changes only the fields sent (version guard), DELETE is refused while a
/// run is active and destroys the stored key.
/// </summary>
public sealed class ManagingTargetsFromTheCliTests(SshServer ssh) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private HttpClient _adminSession = default!;
    private HttpClient _api = default!;
    private string _token = "";

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _adminSession = await _app.CreateFirstAdminAsync();
        _token = await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "targets script", "Admin");
        _api = ApiTokens.Client(_app.BaseUrl, _token);
    }

    [Fact]
    public async Task AScript_AddsScansPinsEditsAndRemovesATarget()
    {
        var ct = TestContext.Current.CancellationToken;
        var keyFile = Path.Combine(_app.DataDirectory, "client-key");
        await File.WriteAllTextAsync(keyFile, ssh.ClientKey, ct);

        var added = await CliAsync(["targets", "add", "--name", "cli-host", "--host", ssh.Host, "--port", ssh.Port.ToString(CultureInfo.InvariantCulture),
            "--user", ssh.User, "--dir", "~/fractal", "--private-key-file", keyFile, "--set", "serverUrl=http://127.0.0.1:8010"]);
        Assert.True(added.ExitCode == 0, added.Combined);
        var id = int.Parse(added.StandardOutput.Trim(), CultureInfo.InvariantCulture);

        var fingerprint = await ssh.HostKeyFingerprintAsync();
        var scanned = await CliAsync(["targets", "scan", "cli-host"]);
        Assert.Contains($"{fingerprint} ", scanned.StandardOutput, StringComparison.Ordinal);

        var wrong = await CliAsync(["targets", "pin", "cli-host", "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]);
        Assert.Equal(2, wrong.ExitCode);
        Assert.Contains("does not match what the host presents now: " + fingerprint, wrong.StandardError, StringComparison.Ordinal);
        var notAFingerprint = await CliAsync(["targets", "pin", "cli-host", "AAAA"]);
        Assert.Equal(2, notAFingerprint.ExitCode);
        Assert.StartsWith("'AAAA' is not a SHA256:… fingerprint.", notAFingerprint.StandardError, StringComparison.Ordinal);
        var pinned = await CliAsync(["targets", "pin", id.ToString(CultureInfo.InvariantCulture), fingerprint]);
        Assert.True(pinned.ExitCode == 0, pinned.Combined);
        Assert.Contains(fingerprint, pinned.StandardOutput, StringComparison.Ordinal);

        // edit: only the fields given change; the pin (same address) and the stored key stay.
        var edited = await CliAsync(["targets", "edit", "cli-host", "--set", "requireApproval=true", "--set", "pipOptions=--no-cache-dir"]);
        Assert.True(edited.ExitCode == 0, edited.Combined);
        var shown = JsonDocument.Parse((await CliAsync(["targets", "show", "cli-host", "--json"])).StandardOutput).RootElement;
        Assert.True(shown.GetProperty("requireApproval").GetBoolean());
        Assert.Equal("--no-cache-dir", shown.GetProperty("pipOptions").GetString());
        Assert.Equal("http://127.0.0.1:8010", shown.GetProperty("serverUrl").GetString());
        Assert.Equal("Pinned", shown.GetProperty("hostKey").GetProperty("state").GetString());
        Assert.True(shown.GetProperty("hasStoredKey").GetBoolean());

        foreach (var (args, message) in new (string[], string)[]
        {
            (["targets", "edit", "cli-host", "--set", "colour=red"], "--set: 'colour' is not a field of a target"),
            (["targets", "edit", "cli-host", "--set", "port=ssh"], "--set port: 'ssh' is not a number."),
            (["targets", "edit", "cli-host"], "Give at least one --set FIELD=VALUE"),
            (["targets", "show", "no-such-target"], "No target named 'no-such-target'"),
            (["targets", "remove", "cli-host"], "Removing a target destroys its stored key: add --yes to confirm."),
        })
        {
            var refused = await CliAsync(args);
            Assert.True(refused.ExitCode == 2, refused.Combined);
            Assert.StartsWith(message, refused.StandardError, StringComparison.Ordinal);
        }

        // The API under edit: the version guard, and only known fields.
        var version = shown.GetProperty("version").GetString();
        using (var stale = await _api.PatchAsJsonAsync($"/api/v1/targets/{id}", new { version = Guid.NewGuid(), requireApproval = false }, ct))
        {
            Assert.Equal(HttpStatusCode.Conflict, stale.StatusCode);
        }

        using (var noVersion = await _api.PatchAsJsonAsync($"/api/v1/targets/{id}", new { requireApproval = false }, ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, noVersion.StatusCode);
            Assert.True((await noVersion.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("errors").TryGetProperty("version", out _));
        }

        using (var unknown = await _api.PatchAsJsonAsync($"/api/v1/targets/{id}", new { version, hostKey = "x" }, ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
            Assert.True((await unknown.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("errors").TryGetProperty("hostKey", out _));
        }

        using (var invalid = await _api.PatchAsJsonAsync($"/api/v1/targets/{id}", new { version, port = 70000 }, ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        }

        var list = await CliAsync(["targets", "list"]);
        Assert.Contains($"{ssh.User}@{ssh.Host}:{ssh.Port}", list.StandardOutput, StringComparison.Ordinal);

        // remove: refused while a run is active, then the target is gone and its stored key destroyed.
        var runId = await HoldActiveRunAsync(id);
        var whileActive = await CliAsync(["targets", "remove", "cli-host", "--yes"]);
        Assert.Equal(2, whileActive.ExitCode);
        Assert.Contains($"Run {runId} is active on this target", whileActive.StandardError, StringComparison.Ordinal);
        await EndRunAsync(runId);

        var removed = await CliAsync(["targets", "remove", "cli-host", "--yes"]);
        Assert.True(removed.ExitCode == 0, removed.Combined);
        using (var gone = await _api.GetAsync($"/api/v1/targets/{id}", ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        }

        Assert.DoesNotContain("cli-host", (await CliAsync(["targets", "list"])).StandardOutput, StringComparison.Ordinal);
        await using (var db = new SqliteConnection($"Data Source={Path.Combine(_app.DataDirectory, "upgradeconsole.db")};Mode=ReadOnly;Pooling=False"))
        {
            await db.OpenAsync(ct);
            await using var cmd = new SqliteCommand($"SELECT count(*) FROM Targets WHERE Id = {id} AND ProtectedPrivateKey IS NULL AND ProtectedKeyPassphrase IS NULL AND DeletedAt IS NOT NULL", db);
            Assert.Equal(1L, await cmd.ExecuteScalarAsync(ct));
        }

        // The run's history still reads; the name is free for a new target.
        using (var history = await _api.GetAsync($"/api/v1/runs/{runId}", ct))
        {
            Assert.Equal(HttpStatusCode.OK, history.StatusCode);
        }

        var again = await CliAsync(["targets", "add", "--name", "cli-host", "--host", ssh.Host, "--user", ssh.User, "--dir", "~/fractal", "--set", "authMethod=KeyFile", "--set", "keyFilePath=" + keyFile]);
        Assert.True(again.ExitCode == 0, again.Combined);

        var delete = (await _app.AuditEventsAsync()).Single(e => e.Action == "target.delete");
        Assert.Equal(id, delete.TargetId);
        Assert.Contains("\"storedKeyDestroyed\":true", delete.Details, StringComparison.Ordinal);
        Assert.Contains("targets script", delete.Details, StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", delete.Details, StringComparison.Ordinal);
    }

    /// <summary>A run active on the target (seeded and held by the test: nothing connects).</summary>
    private async Task<int> HoldActiveRunAsync(int targetId)
    {
        var (runId, _) = await RunSeed.AddRunningRunAsync(_app.Services);
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var run = await db.Runs.SingleAsync(r => r.Id == runId);
        (run.TargetId, run.ActiveTargetId) = (targetId, targetId);
        await db.SaveChangesAsync();
        return runId;
    }

    private async Task EndRunAsync(int runId)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var run = await db.Runs.SingleAsync(r => r.Id == runId);
        (run.State, run.ActiveTargetId) = (RunState.Abandoned, null);
        await db.SaveChangesAsync();
    }

    private Task<ProcessRunner.Result> CliAsync(string[] args) =>
        ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args],
            environment: new Dictionary<string, string?>
            {
                ["UPGRADECONSOLE_URL"] = _app.BaseUrl,
                ["UPGRADECONSOLE_TOKEN"] = _token,
                ["DOTNET_ENVIRONMENT"] = "Production",
            },
            workingDirectory: AppContext.BaseDirectory, timeout: TimeSpan.FromMinutes(3), check: false);

    public async ValueTask DisposeAsync()
    {
        _api.Dispose();
        _adminSession.Dispose();
        await _app.DisposeAsync();
    }
}
