using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Cli;

/// <summary>
/// A script steering runs with the CLI alone (a real process against a real dashboard): preflight overrides
/// on `runs start` (Admin only, audited), `--wait` on the decisions with `runs start --wait`'s exit codes,
/// and the manual checklist (`runs checklist`, `runs tick`).
/// </summary>
public sealed partial class DecidingARunFromTheCliTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private HttpClient _adminSession = default!;
    private string _adminToken = "";
    private string _operatorToken = "";

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _adminSession = await _app.CreateFirstAdminAsync();
        await _app.CreateUserAsync(_adminSession, "operator@example.org", "Operator");
        // The tokens come from the server's shell (headless bootstrap), as a facility's CI would get them.
        _adminToken = (await ServerCliAsync(["tokens", "create", "--user", UpgradeConsoleApplicationFactory.AdminEmail, "--name", "ci admin", "--role", "Admin"])).StandardOutput.Trim();
        _operatorToken = (await ServerCliAsync(["tokens", "create", "--user", "operator@example.org", "--name", "ci operator", "--role", "Operator"])).StandardOutput.Trim();
    }

    [Fact]
    public async Task Overrides_Wait_Retry_AndRollback_FromTheCli_GiveRunsStartsExitCodes()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var fractal = await FractalTarget.CreateAsync(_app, _adminSession, ssh, postgres);
        var target = fractal.TargetId.ToString(CultureInfo.InvariantCulture);

        // The unprepared 2.16 target fails preflight: its failing checks are what an Admin may override.
        var preflight = await CliAsync(["preflight", "run", "--target", target, "--json"], _adminToken);
        Assert.True(preflight.ExitCode == 1, preflight.Combined);
        var failing = JsonDocument.Parse(preflight.StandardOutput).RootElement.GetProperty("checks").EnumerateArray()
            .Where(c => c.GetProperty("status").GetString() == "Fail").Select(c => c.GetProperty("id").GetString()!).ToList();
        Assert.NotEmpty(failing);
        string[] release = ["runs", "start", "--target", target, "--runbook", "fractal-release", "--to", "2.16.99"];

        var malformed = await CliAsync([.. release, "--override", "no-reason-given"], _adminToken);
        Assert.Equal(2, malformed.ExitCode);
        Assert.StartsWith("--override 'no-reason-given' is not CHECK=REASON", malformed.StandardError, StringComparison.Ordinal);

        var overrides = failing.SelectMany(c => new[] { "--override", $"{c}=accepted for the CLI test" }).ToArray();
        var byOperator = await CliAsync([.. release, .. overrides], _operatorToken);
        Assert.Equal(2, byOperator.ExitCode);
        Assert.Contains("Only an Admin may override a failing preflight check", byOperator.StandardError, StringComparison.Ordinal);

        // An Admin overrides every failing check; the release cannot install (no such version): exit 1.
        var failed = await CliAsync([.. release, .. overrides, "--wait"], _adminToken);
        Assert.True(failed.ExitCode == 1, failed.Combined);
        var runId = int.Parse(PlannedRun().Match(failed.StandardOutput).Groups[1].Value, CultureInfo.InvariantCulture);
        var run = runId.ToString(CultureInfo.InvariantCulture);
        Assert.Contains("fractal-server==2.16.99", failed.StandardOutput, StringComparison.Ordinal);
        var plan = (await _app.AuditEventsAsync()).Single(e => e.Action == "run.plan" && e.Subject == $"run {runId}");
        Assert.Contains("accepted for the CLI test", plan.Details, StringComparison.Ordinal);
        Assert.Contains("ci admin", plan.Details, StringComparison.Ordinal);

        // retry --wait: the phase fails again, exit 1, and only the new lines are printed.
        var retried = await CliAsync(["runs", "retry", run, "--wait"], _adminToken);
        Assert.True(retried.ExitCode == 1, retried.Combined);
        Assert.StartsWith($"Run {runId}: Running", retried.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("fractal-server==2.16.99", retried.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("waits for a decision", retried.StandardError, StringComparison.Ordinal);

        // rollback --wait: exit 0 once rolled back.
        var rolledBack = await CliAsync(["runs", "rollback", run, "--reason", "no such release", "--wait"], _adminToken);
        Assert.True(rolledBack.ExitCode == 0, rolledBack.Combined);
        Assert.Contains($"Run {runId} (fractal-release, 2.16.6 → 2.16.99): RolledBack", rolledBack.StandardError, StringComparison.Ordinal);
        using var api = ApiTokens.Client(_app.BaseUrl, _adminToken);
        Assert.Equal("RolledBack", (await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}", ct)).GetProperty("state").GetString());

        // Nothing more to decide: refused, exit 2, in one line.
        var again = await CliAsync(["runs", "rollback", run, "--reason", "twice", "--wait"], _adminToken);
        Assert.Equal(2, again.ExitCode);
        Assert.Single(again.StandardError.Trim().Split('\n'));
    }

    [Fact]
    public async Task RunsChecklist_ListsTheManualChecks_AndRunsTick_TicksThemWithANote()
    {
        var (runId, items) = await SeedWaitingForChecklistAsync();
        var run = runId.ToString(CultureInfo.InvariantCulture);

        var list = await CliAsync(["runs", "checklist", run], _operatorToken);
        Assert.True(list.ExitCode == 0, list.Combined);
        Assert.Contains($"{items[0],4} [ ] Sign in as a user", list.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("0/3 ticked; the run is WaitingForChecklist.", list.StandardOutput, StringComparison.Ordinal);

        var neither = await CliAsync(["runs", "tick", run], _operatorToken);
        Assert.Equal(2, neither.ExitCode);
        Assert.StartsWith("Give either an ITEM number or --all.", neither.StandardError, StringComparison.Ordinal);
        var both = await CliAsync(["runs", "tick", run, items[0].ToString(CultureInfo.InvariantCulture), "--all"], _operatorToken);
        Assert.Equal(2, both.ExitCode);
        var unknown = await CliAsync(["runs", "tick", run, "999999"], _operatorToken);
        Assert.Equal(2, unknown.ExitCode);
        Assert.Equal($"Run {runId} has no checklist item 999999 (items: {string.Join(", ", items)}).", unknown.StandardError.Trim());

        var one = await CliAsync(["runs", "tick", run, items[0].ToString(CultureInfo.InvariantCulture), "--note", "signed in as alice"], _operatorToken);
        Assert.True(one.ExitCode == 0, one.Combined);
        Assert.Contains($"Ticked {items[0]}: Sign in as a user", one.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($"Run {runId}: WaitingForChecklist", one.StandardOutput, StringComparison.Ordinal);

        var rest = await CliAsync(["runs", "tick", run, "--all", "--note", "checked by the CI bot"], _operatorToken);
        Assert.True(rest.ExitCode == 0, rest.Combined);
        Assert.Equal(2, Regex.Count(rest.StandardOutput, "^Ticked ", RegexOptions.Multiline));
        Assert.Contains($"Run {runId}: Succeeded", rest.StandardOutput, StringComparison.Ordinal);

        var after = await CliAsync(["runs", "checklist", run], _operatorToken);
        Assert.Contains($"{items[0],4} [x] Sign in as a user — operator@example.org (signed in as alice)", after.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("3/3 ticked; the run is Succeeded.", after.StandardOutput, StringComparison.Ordinal);
        var ticks = (await _app.AuditEventsAsync()).Where(e => e.Action == "run.checklist").ToList();
        Assert.Equal(3, ticks.Count);
        Assert.All(ticks, e => Assert.Contains("ci operator", e.Details, StringComparison.Ordinal));
    }

    /// <summary>A run whose automatic phases are done and whose three manual checks wait (seeded: no host needed to tick).</summary>
    private async Task<(int RunId, List<int> Items)> SeedWaitingForChecklistAsync()
    {
        var (runId, _) = await RunSeed.AddRunningRunAsync(_app.Services, null, ("pip-install", "Install", PhaseState.Succeeded), ("checklist", "Manual checks", PhaseState.Running));
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var run = await db.Runs.Include(r => r.Checklist).SingleAsync(r => r.Id == runId);
        run.State = RunState.WaitingForChecklist;
        run.Checklist.AddRange(ChecklistTexts.Select((text, i) => new RunChecklistItem { Index = i, Text = text }));
        await db.SaveChangesAsync();
        return (runId, run.Checklist.OrderBy(c => c.Index).Select(c => c.Id).ToList());
    }

    private Task<ProcessRunner.Result> CliAsync(string[] args, string token) =>
        ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args],
            environment: new Dictionary<string, string?>
            {
                ["UPGRADECONSOLE_URL"] = _app.BaseUrl,
                ["UPGRADECONSOLE_TOKEN"] = token,
                ["DOTNET_ENVIRONMENT"] = "Production",
            },
            workingDirectory: AppContext.BaseDirectory, timeout: TimeSpan.FromMinutes(5), check: false);

    private Task<ProcessRunner.Result> ServerCliAsync(string[] args) =>
        ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args],
            environment: new Dictionary<string, string?>
            {
                ["UpgradeConsole__DataDirectory"] = _app.DataDirectory,
                ["DOTNET_ENVIRONMENT"] = "Production",
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
            },
            workingDirectory: AppContext.BaseDirectory);

    private static readonly string[] ChecklistTexts = ["Sign in as a user", "Open a project", "Submit a small job"];

    [GeneratedRegex("Planned run ([0-9]+):")]
    private static partial Regex PlannedRun();

    public async ValueTask DisposeAsync()
    {
        _adminSession.Dispose();
        await _app.DisposeAsync();
    }
}
