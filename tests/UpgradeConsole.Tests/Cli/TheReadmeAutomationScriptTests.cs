using System.Net.Http.Json;
using System.Text.Json;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Cli;

/// <summary>
/// The README's Automation script, taken from the README as it is and run with <c>sh</c> against a real dashboard
/// and the Fractal double on a real sshd (its database on a real PostgreSQL), so that the documented automation
/// cannot rot: a token from the server's shell, the target added and its host key pinned, the users fixed, preflight,
/// the 2.16 → 2.17.0 upgrade started and waited for, then either the checklist ticked (the facility's smoke test
/// passes: the run succeeds) or a rollback after the point of no return (it fails) — with the CLI alone.
/// </summary>
public sealed class TheReadmeAutomationScriptTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    /// <summary>What the double's users need before 2.17.0 (the users page's fixes, as a facility would list them).</summary>
    private const string UserFixes = """
        # The users preflight names as blocking or left out, and what each gets.
        erin@example.org --create-settings-row --slurm-user erin --project-dir /shared/projects/erin
        bob@example.org --project-dir /shared/projects/bob
        frank@example.org --slurm-user frank
        ivan@example.org --project-dir /shared/projects/ivan
        carol@example.org --activate --verify --slurm-user carol --project-dir /shared/projects/carol
        dave@example.org --activate --verify

        """;

    private readonly UpgradeConsoleApplicationFactory _app = new();
    private HttpClient _adminSession = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _adminSession = await _app.CreateFirstAdminAsync();
    }

    [Fact]
    public async Task TheScript_WhenTheSmokeTestPasses_TicksTheChecklist_AndTheUpgradeSucceeds()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var fractal = await FractalTarget.CreateAsync(_app, _adminSession, ssh, postgres, addTarget: false);
        await fractal.PrepareHostForUpgradeAsync(ssh);
        var name = "lab-fractal-" + Guid.NewGuid().ToString("N")[..6];

        var result = await RunScriptAsync(fractal, name, smokeTest: $"curl -fsS {fractal.Host.ServerUrl}/api/alive/");

        Assert.True(result.ExitCode == 0, result.Combined);
        Assert.Contains("PASS  ", result.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("FAIL  ", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Fixed user 3 (bob@example.org): Migrated", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("\"version\": \"2.17.0\"", result.StandardOutput, StringComparison.Ordinal);
        Assert.Matches("Run [0-9]+ \\(fractal-2.16-to-2.17.0, 2.16.6 → 2.17.0\\): Succeeded", result.StandardOutput);
        Assert.DoesNotContain(FractalTarget.DbPassword, result.Combined, StringComparison.Ordinal);
        Assert.Equal("83bc2ad3ffcc", await fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));

        using var api = await AdminApiAsync();
        var run = (await api.GetFromJsonAsync<JsonElement>("/api/v1/runs?limit=1", ct))[0];
        Assert.Equal("Succeeded", run.GetProperty("state").GetString());
        var detail = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{run.GetProperty("id").GetInt32()}", ct);
        Assert.All(detail.GetProperty("checklist").EnumerateArray(), i => Assert.Contains("checked by the upgrade script", i.GetProperty("note").GetString(), StringComparison.Ordinal));

        // Every step is in the audit history under the script's own token.
        var events = await _app.AuditEventsAsync();
        foreach (var action in new[] { "token.create", "target.create", "target.pin", "fractal.user.project-dir", "preflight.run", "run.plan", "run.start", "run.checklist" })
        {
            Assert.Contains(events, e => e.Action == action);
        }

        Assert.Contains(events, e => e.Action == "fractal.user.project-dir" && e.Details.Contains("upgrade script", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheScript_WhenTheSmokeTestFails_RollsBackAfterThePointOfNoReturn_AndExits1()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var fractal = await FractalTarget.CreateAsync(_app, _adminSession, ssh, postgres, addTarget: false);
        await fractal.PrepareHostForUpgradeAsync(ssh);
        var before = await fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version");
        var name = "lab-fractal-" + Guid.NewGuid().ToString("N")[..6];

        // The facility's check finds the upgraded server wanting (here: a page it does not serve).
        var result = await RunScriptAsync(fractal, name, smokeTest: $"curl -fsS {fractal.Host.ServerUrl}/api/no-such-page/");

        Assert.True(result.ExitCode == 1, result.Combined);
        Assert.Matches("Run [0-9]+: RollingBack", result.StandardOutput);
        Assert.Matches("Run [0-9]+ \\(fractal-2.16-to-2.17.0, 2.16.6 → 2.17.0\\): RolledBack", result.StandardError);
        Assert.Equal(before, await fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));

        using var api = await AdminApiAsync();
        var run = (await api.GetFromJsonAsync<JsonElement>("/api/v1/runs?limit=1", ct))[0];
        Assert.Equal("RolledBack", run.GetProperty("state").GetString());
        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Action == "run.rollback" && e.Details.Contains("the smoke test failed", StringComparison.Ordinal));
    }

    /// <summary>The README's script block, byte for byte, run by sh with the settings it reads from the environment.</summary>
    private async Task<ProcessRunner.Result> RunScriptAsync(FractalTarget fractal, string targetName, string smokeTest)
    {
        var readme = await File.ReadAllTextAsync(Path.Combine(TestPaths.RepositoryRoot, "README.md"));
        const string marker = "<!-- automation-script -->\n```sh\n";
        var start = readme.IndexOf(marker, StringComparison.Ordinal);
        Assert.True(start >= 0, "README.md has no automation script block");
        start += marker.Length;
        var script = readme[start..readme.IndexOf("```\n", start, StringComparison.Ordinal)];
        var work = Path.Combine(_app.DataDirectory, "script");
        Directory.CreateDirectory(work);
        var scriptFile = Path.Combine(work, "upgrade.sh");
        await File.WriteAllTextAsync(scriptFile, script);
        var keyFile = Path.Combine(work, "id_ed25519");
        await File.WriteAllTextAsync(keyFile, ssh.ClientKey);
        // The host's public key as its admin would hand it over.
        var hostKey = Path.Combine(work, "fractal-host-key.pub");
        await File.WriteAllTextAsync(hostKey, ssh.HostPublicKey + "\n");
        var fixes = Path.Combine(work, "user-fixes.txt");
        await File.WriteAllTextAsync(fixes, UserFixes);

        return await ProcessRunner.RunAsync("sh", [scriptFile],
            environment: new Dictionary<string, string?>
            {
                // The server-side verb (tokens create) reads the dashboard's configuration, as on its server.
                ["UpgradeConsole__DataDirectory"] = _app.DataDirectory,
                ["DOTNET_ENVIRONMENT"] = "Production",
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
                ["UC_DLL"] = Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"),
                ["UPGRADECONSOLE_URL"] = _app.BaseUrl,
                ["UPGRADECONSOLE_TOKEN"] = null,
                ["ADMIN_EMAIL"] = UpgradeConsoleApplicationFactory.AdminEmail,
                ["TARGET"] = targetName,
                ["TARGET_HOST"] = ssh.Host,
                ["TARGET_PORT"] = ssh.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["SSH_USER"] = ssh.User,
                ["SSH_KEY"] = keyFile,
                ["HOST_KEY_PUB"] = hostKey,
                ["FRACTAL_DIR"] = fractal.Host.Directory,
                ["FRACTAL_PYTHON"] = fractal.Host.Python,
                ["FRACTAL_URL"] = fractal.Host.ServerUrl,
                ["STOP_COMMAND"] = fractal.Host.StopCommand,
                ["START_COMMAND"] = fractal.Host.StartCommand,
                ["STATUS_COMMAND"] = fractal.Host.StatusCommand,
                // No PyPI here: pip installs the double's wheels from the host's own directory.
                ["PIP_OPTIONS"] = $"--no-index --find-links {await fractal.Host.AbsoluteDirectoryAsync()}/wheels",
                ["USER_FIXES"] = fixes,
                ["SMOKE_TEST"] = smokeTest,
            },
            workingDirectory: work, timeout: TimeSpan.FromMinutes(15), check: false);
    }

    private async Task<HttpClient> AdminApiAsync() =>
        ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "test reader", "Admin"));

    public async ValueTask DisposeAsync()
    {
        _adminSession.Dispose();
        await _app.DisposeAsync();
    }
}
