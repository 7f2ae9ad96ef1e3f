using System.Globalization;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Cli;

/// <summary>
/// `fractal-users list|set` and `runs list|wait` as a real process against a real dashboard, the Fractal double on a real
/// sshd and its database on a real PostgreSQL: the API's validation, version guard and audit through the CLI, and
/// every wrong argument refused in one line with exit 2.
/// </summary>
public sealed class FixingFractalUsersFromTheCliTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private HttpClient _adminSession = default!;
    private string _operatorToken = "";
    private string _viewerToken = "";

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _adminSession = await _app.CreateFirstAdminAsync();
        _operatorToken = await ApiTokens.CreateAsync(_app, await _app.SignedInEmailAsync("Operator"), "users script", "Operator");
        _viewerToken = await ApiTokens.CreateAsync(_app, await _app.SignedInEmailAsync("Viewer"), "read only", "Viewer");
    }

    [Fact]
    public async Task FractalUsersList_ShowsWhatTheUpgradeDoesToEach_AndSet_FixesOneWithTheApisValidationGuardAndAudit()
    {
        await using var fractal = await FractalTarget.CreateAsync(_app, _adminSession, ssh, postgres);
        var target = fractal.TargetId.ToString(CultureInfo.InvariantCulture);

        var blocking = await CliAsync(["fractal-users", "list", "--target", target, "--outcome", "blocking"], _viewerToken);
        Assert.True(blocking.ExitCode == 0, blocking.Combined);
        var rows = blocking.StandardOutput.Trim().Split('\n');
        Assert.StartsWith("ID    EMAIL", rows[0], StringComparison.Ordinal);
        Assert.Contains(rows, r => r.Contains("bob@example.org", StringComparison.Ordinal) && r.Contains("Blocks", StringComparison.Ordinal));
        Assert.DoesNotContain(rows, r => r.Contains("alice@example.org", StringComparison.Ordinal));
        Assert.Matches("of all users [0-9]+ migrated, [0-9]+ left out, [0-9]+ blocking \\(backend slurm\\)", blocking.StandardError);

        var all = await CliAsync(["fractal-users", "list", "--target", target, "--json"], _viewerToken);
        Assert.True(all.ExitCode == 0, all.Combined);
        var users = JsonDocument.Parse(all.StandardOutput).RootElement.EnumerateArray().ToList();
        Assert.Equal(10, users.Count);
        var bob = users.Single(u => u.GetProperty("email").GetString() == "bob@example.org");
        Assert.Equal("Blocks", bob.GetProperty("outcome").GetString());
        Assert.Equal("Migrated", users.Single(u => u.GetProperty("email").GetString() == "alice@example.org").GetProperty("outcome").GetString());

        // Wrong arguments: one line, exit 2, nothing changed.
        foreach (var (args, token, message) in new (string[], string, string)[]
        {
            (["fractal-users", "list", "--target", target, "--outcome", "broken"], _viewerToken, "--outcome 'broken' is not one of: all, blocking, left-out, migrated."),
            (["fractal-users", "set", "--target", target, "--user", "bob@example.org"], _operatorToken, "Nothing to change: give --project-dir, --slurm-user, --activate, --verify or --create-settings-row."),
            (["fractal-users", "set", "--target", target, "--user", "nobody@example.org", "--activate"], _operatorToken, $"Target {target} has no Fractal user 'nobody@example.org'."),
            (["fractal-users", "set", "--target", target, "--user", "bob@example.org", "--project-dir", "projects/relative"], _operatorToken, "projectDir: "),
            (["fractal-users", "set", "--target", target, "--user", "bob@example.org", "--project-dir", "/shared/$(reboot)"], _operatorToken, "projectDir: "),
            (["fractal-users", "set", "--target", target, "--user", "bob@example.org", "--project-dir", "/shared/projects/bob"], _viewerToken, "(HTTP 403)"),
            (["fractal-users", "set", "--target", "no-such-target", "--user", "bob@example.org", "--activate"], _operatorToken, "No target named 'no-such-target'"),
        })
        {
            var refused = await CliAsync(args, token);
            Assert.True(refused.ExitCode == 2, $"{string.Join(' ', args)}: {refused.Combined}");
            Assert.Single(refused.StandardError.Trim().Split('\n'));
            Assert.Contains(message, refused.StandardError, StringComparison.Ordinal);
            Assert.Equal("", refused.StandardOutput);
        }

        Assert.Null(await ProjectDirAsync(fractal, 3));

        // The fix: by e-mail (any case), the version read just before; the answer is the user's outcome after it.
        var fixedBob = await CliAsync(["fractal-users", "set", "--target", target, "--user", "BOB@example.org", "--project-dir", "/shared/projects/bob"], _operatorToken);
        Assert.True(fixedBob.ExitCode == 0, fixedBob.Combined);
        Assert.StartsWith("Fixed user 3 (bob@example.org): Migrated", fixedBob.StandardOutput.Trim(), StringComparison.Ordinal);
        Assert.Single(fixedBob.StandardOutput.Trim().Split('\n'));
        Assert.Equal("/shared/projects/bob", await ProjectDirAsync(fractal, 3));

        // Several changes at once, in the page's order: a settings row first, then its values (erin has none).
        var erin = await CliAsync(["fractal-users", "set", "--target", target, "--user", "erin@example.org", "--create-settings-row",
            "--slurm-user", "erin", "--project-dir", "/shared/projects/erin"], _operatorToken);
        Assert.True(erin.ExitCode == 0, erin.Combined);
        Assert.Equal("/shared/projects/erin", await fractal.ScalarAsync<string>(
            "SELECT s.project_dir FROM user_settings s JOIN user_oauth u ON u.user_settings_id = s.id WHERE u.email = 'erin@example.org'"));
        var dave = await CliAsync(["fractal-users", "set", "--target", target, "--user", "5", "--activate", "--verify"], _operatorToken);
        Assert.True(dave.ExitCode == 0, dave.Combined);
        Assert.True(await fractal.ScalarAsync<bool>("SELECT is_active AND is_verified FROM user_oauth WHERE id = 5"));

        var events = await _app.AuditEventsAsync();
        var projectDir = events.Single(e => e.Action == "fractal.user.project-dir" && e.Details.Contains("/shared/projects/bob", StringComparison.Ordinal));
        Assert.Contains("users script", projectDir.Details, StringComparison.Ordinal);
        Assert.Contains(events, e => e.Action == "fractal.user.settings-row" && e.Details.Contains("users script", StringComparison.Ordinal));
        Assert.Contains(events, e => e.Action == "fractal.user.activate" && e.Details.Contains("users script", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RunsList_FiltersByTargetAndState_PrintsNumbersForAScript_AndRunsWaitUntilTheChecklist()
    {
        var (running, _) = await RunSeed.AddRunningRunAsync(_app.Services, null);
        var (waiting, _) = await RunSeed.AddRunningRunAsync(_app.Services, null, ("pip-install", "Install", PhaseState.Succeeded), ("checklist", "Manual checks", PhaseState.Running));
        string waitingTarget;
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var run = await db.Runs.Include(r => r.Checklist).SingleAsync(r => r.Id == waiting);
            run.State = RunState.WaitingForChecklist;
            run.Checklist.Add(new RunChecklistItem { Index = 0, Text = "Sign in as a user" });
            await db.SaveChangesAsync();
            waitingTarget = (await db.Targets.SingleAsync(t => t.Id == run.TargetId)).Name;
        }

        var table = await CliAsync(["runs", "list"], _viewerToken);
        Assert.True(table.ExitCode == 0, table.Combined);
        Assert.StartsWith("RUN    TARGET", table.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("2.16.6 → 2.16.7", table.StandardOutput, StringComparison.Ordinal);

        var ids = await CliAsync(["runs", "list", "--ids"], _viewerToken);
        Assert.Equal($"{waiting}\n{running}", ids.StandardOutput.Trim());
        var byTarget = await CliAsync(["runs", "list", "--target", waitingTarget, "--limit", "1", "--ids"], _viewerToken);
        Assert.Equal(waiting.ToString(CultureInfo.InvariantCulture), byTarget.StandardOutput.Trim());
        var byState = await CliAsync(["runs", "list", "--state", "running", "--json"], _viewerToken);
        Assert.True(byState.ExitCode == 0, byState.Combined);
        Assert.Equal([running], JsonDocument.Parse(byState.StandardOutput).RootElement.EnumerateArray().Select(r => r.GetProperty("id").GetInt32()));

        foreach (var (args, message) in new (string[], string)[]
        {
            (["runs", "list", "--state", "Sleeping"], "--state 'Sleeping' is not one of: Planned, Running"),
            (["runs", "list", "--state", "1"], "--state '1' is not one of"),
            (["runs", "list", "--limit", "0"], "--limit 0 is not between 1 and 1000."),
            (["runs", "list", "--target", "no-such-target"], "No target named 'no-such-target'"),
            (["runs", "wait", waiting.ToString(CultureInfo.InvariantCulture), "--until", "lunch"], "Argument 'lunch' not recognized. Must be one of: 'end' 'checklist'."),
        })
        {
            var refused = await CliAsync(args, _viewerToken);
            Assert.True(refused.ExitCode == 2, $"{string.Join(' ', args)}: {refused.Combined}");
            Assert.Single(refused.StandardError.Trim().Split('\n'));
            Assert.Contains(message, refused.StandardError, StringComparison.Ordinal);
        }

        // The run's automatic phases are done and its manual check waits: --until checklist is reached (exit 0),
        // and the run's summary says what waits.
        var reached = await CliAsync(["runs", "wait", waiting.ToString(CultureInfo.InvariantCulture), "--until", "checklist"], _viewerToken);
        Assert.True(reached.ExitCode == 0, reached.Combined);
        Assert.Contains($"Run {waiting} (fractal-release, 2.16.6 → 2.16.7): WaitingForChecklist", reached.StandardError, StringComparison.Ordinal);
    }

    private static async Task<string?> ProjectDirAsync(FractalTarget fractal, int settingsId)
    {
        var value = await fractal.ScalarAsync<object>($"SELECT project_dir FROM user_settings WHERE id = {settingsId}");
        return value as string;
    }

    private Task<ProcessRunner.Result> CliAsync(string[] args, string token) =>
        ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args],
            environment: new Dictionary<string, string?>
            {
                ["UPGRADECONSOLE_URL"] = _app.BaseUrl,
                ["UPGRADECONSOLE_TOKEN"] = token,
                ["DOTNET_ENVIRONMENT"] = "Production",
            },
            workingDirectory: AppContext.BaseDirectory, timeout: TimeSpan.FromMinutes(4), check: false);

    public async ValueTask DisposeAsync()
    {
        _adminSession.Dispose();
        await _app.DisposeAsync();
    }
}
