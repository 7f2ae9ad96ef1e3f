using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Api;

/// <summary>
/// What a facility's script does with only a token, through the CLI as a real process and the API:
/// preflight (red, fixed through the API, green), a release run that fails (exit 1) and is rolled
/// back, then the 2.16 → 2.17.0 upgrade of the Fractal double followed live to exit 0 once the
/// manual checks are ticked; every action in the audit history with the token named.
/// </summary>
public sealed class AutomationFromAShellTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private FractalTarget _fractal = default!;
    private string _targetName = "";
    private string _adminToken = "";
    private HttpClient _admin = default!;
    private HttpClient _operator = default!;
    private HttpClient _adminSession = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        var adminSession = _adminSession = await _app.CreateFirstAdminAsync();
        _fractal = await FractalTarget.CreateAsync(_app, adminSession, ssh, postgres);
        _adminToken = await ApiTokens.CreateAsync(_app, UpgradeConsoleApplicationFactory.AdminEmail, "cron upgrade", "Admin");
        _admin = ApiTokens.Client(_app.BaseUrl, _adminToken);
        _operator = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, await _app.SignedInEmailAsync("Operator"), "checklist bot", "Operator"));
        _targetName = (await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{_fractal.TargetId}")).GetProperty("name").GetString()!;
    }

    [Fact]
    public async Task AnAdminScript_RunsPreflight_FixesAUser_AndUpgradesTheDouble_WithTheRightExitCodes()
    {
        var ct = TestContext.Current.CancellationToken;

        // Without configuration the CLI says what is missing.
        var unconfigured = await CliAsync(["runs", "status", "1"], token: null);
        Assert.Equal(2, unconfigured.ExitCode);
        Assert.Contains("UPGRADECONSOLE_TOKEN", unconfigured.StandardError, StringComparison.Ordinal);

        // 1. Preflight on the unprepared 2.16 target: red, exit 1.
        var red = await CliAsync(["preflight", "run", "--target", _targetName]);
        Assert.True(red.ExitCode == 1, red.Combined);
        Assert.Contains("FAIL  ", red.StandardOutput, StringComparison.Ordinal);

        // 2. Fix a blocking user through the API, with the users page's validation and version guard.
        var blocking = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{_fractal.TargetId}/fractal/users?filter=blocking", ct);
        Assert.True(blocking.GetProperty("blocks").GetInt32() > 0);
        var user = blocking.GetProperty("users").EnumerateArray().First(u => u.GetProperty("settingsId").ValueKind == JsonValueKind.Number);
        var userUrl = $"/api/v1/targets/{_fractal.TargetId}/fractal/users/{user.GetProperty("id").GetInt32()}";
        using (var relative = await _admin.PatchAsJsonAsync(userUrl, new { version = user.GetProperty("version").GetString(), projectDir = "projects/relative" }, ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, relative.StatusCode);
            Assert.True((await relative.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("errors").TryGetProperty("projectDir", out _));
        }

        using (var stale = await _admin.PatchAsJsonAsync(userUrl, new { version = "0000000000000000", projectDir = "/shared/projects/api" }, ct))
        {
            Assert.Equal(HttpStatusCode.Conflict, stale.StatusCode);
            Assert.Equal(user.GetProperty("email").GetString(), (await stale.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("current").GetProperty("email").GetString());
        }

        using (var fixedUser = await _admin.PatchAsJsonAsync(userUrl, new { version = user.GetProperty("version").GetString(), projectDir = "/shared/projects/api", isActive = true, isVerified = true }, ct))
        {
            var body = await fixedUser.Content.ReadAsStringAsync(ct);
            Assert.True(fixedUser.StatusCode == HttpStatusCode.OK, body);
            Assert.Equal("/shared/projects/api", JsonDocument.Parse(body).RootElement.GetProperty("projectDir").GetString());
        }

        // 3. The rest as the admin would have done on the users page; preflight is green: exit 0.
        await _fractal.PrepareForUpgradeAsync(ssh);
        var green = await CliAsync(["preflight", "run", "--target", _targetName]);
        Assert.True(green.ExitCode == 0, green.Combined);

        // The facility wants a second pair of eyes from now on: the script reads the target and writes it back.
        var target = (await _admin.GetFromJsonAsync<System.Text.Json.Nodes.JsonObject>($"/api/v1/targets/{_fractal.TargetId}", ct))!;
        target["requireApproval"] = true;
        using (var edited = await _admin.PutAsJsonAsync($"/api/v1/targets/{_fractal.TargetId}", target, ct))
        {
            Assert.True(edited.StatusCode == HttpStatusCode.OK, await edited.Content.ReadAsStringAsync(ct));
        }

        // 4. A release that cannot install (no such wheel): the CLI waits for the approval, then the run
        //    fails and the CLI exits 1; the script rolls back.
        using var release = StartCli(["runs", "start", "--target", _targetName, "--runbook", "fractal-release", "--to", "2.16.99", "--wait"]);
        await release.WaitForErrorAsync("needs a second Operator's or Admin's approval", TimeSpan.FromSeconds(60));
        await ApproveAsync(await WaitForRunAsync(0, ct), ct);
        var failed = await release.WaitAsync(TimeSpan.FromMinutes(3));
        Assert.True(failed.ExitCode == 1, failed.Combined);
        Assert.Contains("Approved by operator@example.org", failed.StandardError, StringComparison.Ordinal);
        Assert.Contains("waits for a decision", failed.StandardError, StringComparison.Ordinal);
        Assert.Contains("fractal-server==2.16.99", failed.StandardOutput, StringComparison.Ordinal);
        var failedRun = RunIdOf(failed.StandardOutput);
        Assert.Contains($"Run {failedRun} (fractal-release, 2.16.6 → 2.16.99): Failed", failed.StandardError, StringComparison.Ordinal);
        var noReason = await CliAsync(["runs", "rollback", failedRun.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Assert.Equal(2, noReason.ExitCode);
        Assert.Contains("--reason", noReason.StandardError, StringComparison.Ordinal);
        var rollback = await CliAsync(["runs", "rollback", failedRun.ToString(System.Globalization.CultureInfo.InvariantCulture), "--reason", "wrong version in the cron job"]);
        Assert.True(rollback.ExitCode == 0, rollback.Combined);
        Assert.Contains($"Run {failedRun}: RollingBack", rollback.StandardOutput, StringComparison.Ordinal);

        Assert.Equal("RolledBack", await WaitForStateAsync(failedRun, s => s is not ("RollingBack" or "Failed"), ct));

        // 5. The script reads the plan first: every phase with its commands, the env changes, the users.
        using (var preview = await _admin.GetAsync($"/api/v1/targets/{_fractal.TargetId}/plan?runbook=fractal-2.16-to-2.17.0", ct))
        {
            var text = await preview.Content.ReadAsStringAsync(ct);
            Assert.True(preview.StatusCode == HttpStatusCode.OK, text);
            Assert.DoesNotContain(FractalTarget.DbPassword, text, StringComparison.Ordinal);
            var plan = JsonDocument.Parse(text).RootElement;
            Assert.Equal("2.16.6", plan.GetProperty("fromVersion").GetString());
            Assert.Equal(10, plan.GetProperty("users").GetProperty("migrated").GetInt32());
            var phases = plan.GetProperty("phases").EnumerateArray().ToList();
            Assert.True(phases.Single(p => p.GetProperty("key").GetString() == "set-db").GetProperty("pointOfNoReturn").GetBoolean());
            Assert.Contains("fractal-server==2.17.0", phases.Single(p => p.GetProperty("key").GetString() == "pip-install").GetProperty("commands").GetString(), StringComparison.Ordinal);
            Assert.Contains(plan.GetProperty("envFile").GetProperty("changes").EnumerateArray(), c => c.GetProperty("key").GetString() == "FRACTAL_RUNNER_BACKEND");
            Assert.Contains("+ FRACTAL_RUNNER_BACKEND=slurm_sudo", plan.GetProperty("envFile").GetProperty("diff").GetString(), StringComparison.Ordinal);
        }

        // The 2.17.0 upgrade, followed live; it waits for the manual checks, which a person (here: a bot) ticks.
        using var upgrade = StartCli(["runs", "start", "--target", _targetName, "--runbook", "fractal-2.16-to-2.17.0", "--wait"]);
        var runId = await WaitForRunAsync(failedRun, ct);
        await upgrade.WaitForErrorAsync("approval", TimeSpan.FromSeconds(60));
        await ApproveAsync(runId, ct);
        Assert.Equal("WaitingForChecklist", await WaitForStateAsync(runId, s => s is not ("Planned" or "Running"), ct));
        // The CLI says what it waits for, and keeps waiting.
        await upgrade.WaitForErrorAsync("tick the manual checks", TimeSpan.FromSeconds(30));
        await Task.Delay(1000, ct);
        Assert.False(upgrade.Process.HasExited, "the CLI must keep waiting while the manual checks are open");
        var run = await _operator.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}", ct);
        foreach (var item in run.GetProperty("checklist").EnumerateArray())
        {
            using var ticked = await _operator.PostAsJsonAsync($"/api/v1/runs/{runId}/checklist/{item.GetProperty("id").GetInt32()}", new { done = true, note = "checked by the bot" }, ct);
            Assert.Equal(HttpStatusCode.OK, ticked.StatusCode);
        }

        var done = await upgrade.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True(done.ExitCode == 0, done.Combined);
        Assert.Contains($"Planned run {runId}: 2.16.6 → 2.17.0", done.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Successfully installed fractal-server-2.17.0", done.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("END - all ok.", done.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain(FractalTarget.DbPassword, done.Combined, StringComparison.Ordinal);
        Assert.Contains("── Migrate the data (fractalctl update-db-data): Succeeded", done.StandardError, StringComparison.Ordinal);
        Assert.Contains("manual checks", done.StandardError, StringComparison.Ordinal);
        Assert.Equal("83bc2ad3ffcc", await _fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));

        var snapshot = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}/plan", ct);
        Assert.Equal(10, snapshot.GetProperty("migratedUserIds").GetArrayLength());
        Assert.Equal("981d588fe248", snapshot.GetProperty("alembicHead").GetString());
        var latest = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{_fractal.TargetId}/preflight", ct);
        Assert.True(latest.GetProperty("checks").GetArrayLength() > 10);

        // status and log from the shell.
        var status = await CliAsync(["runs", "status", runId.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Assert.True(status.ExitCode == 0, status.Combined);
        Assert.Contains(": Succeeded", status.StandardOutput, StringComparison.Ordinal);
        var log = await CliAsync(["runs", "log", runId.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Assert.Contains("Successfully installed fractal-server-2.17.0", log.StandardOutput, StringComparison.Ordinal);

        // 6. The audit history names the token for every action, and the chain holds.
        var events = (await _admin.GetFromJsonAsync<JsonElement>("/api/v1/audit?q=cron%20upgrade&limit=1000", ct)).GetProperty("events").EnumerateArray().ToList();
        foreach (var action in new[] { "preflight.run", "fractal.user.project-dir", "target.edit", "run.plan", "run.start", "run.rollback", "api.call" })
        {
            Assert.Contains(events, e => e.GetProperty("action").GetString() == action
                && e.GetProperty("actor").GetString() == UpgradeConsoleApplicationFactory.AdminEmail
                && e.GetProperty("details").GetProperty("apiToken").GetProperty("name").GetString() == "cron upgrade");
        }

        var all = await _app.AuditEventsAsync();
        Assert.Contains(all, e => e.Action == "run.checklist" && e.Details.Contains("checklist bot", StringComparison.Ordinal));
        Assert.Equal(2, all.Count(e => e.Action == "run.approve" && e.Actor == "operator@example.org" && e.Details.Contains("checklist bot", StringComparison.Ordinal)));
        Assert.DoesNotContain(all, e => e.Details.Contains(_adminToken, StringComparison.Ordinal));
        // The audit page shows the same, with the token named (its service, with the page's filter).
        var auditPage = await _app.AsAsync<UpgradeConsole.Web.Audit.AuditHistory, List<UpgradeConsole.Web.Audit.AuditEvent>>(UpgradeConsoleApplicationFactory.AdminEmail,
            (h, a) => h.PageAsync(a, new UpgradeConsole.Web.Audit.AuditFilter { Action = "run.start" }, 100, ct));
        Assert.Contains(auditPage, e => e.Details.Contains("cron upgrade", StringComparison.Ordinal));
        var verified = await (await _admin.PostAsync("/api/v1/audit/verify", null, ct)).Content.ReadFromJsonAsync<JsonElement>(ct);
        Assert.True(verified.GetProperty("holds").GetBoolean(), verified.ToString());
    }

    /// <summary>The second person (the Operator's token) approves; the planner's token may not.</summary>
    private async Task ApproveAsync(int runId, CancellationToken ct)
    {
        using (var own = await _admin.PostAsync($"/api/v1/runs/{runId}/approve", null, ct))
        {
            Assert.Equal(HttpStatusCode.Conflict, own.StatusCode);
        }

        using var approved = await _operator.PostAsync($"/api/v1/runs/{runId}/approve", null, ct);
        Assert.True(approved.StatusCode == HttpStatusCode.OK, await approved.Content.ReadAsStringAsync(ct));
    }

    private static int RunIdOf(string output)
    {
        var match = System.Text.RegularExpressions.Regex.Match(output, "Planned run ([0-9]+):");
        Assert.True(match.Success, output);
        return int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The run the CLI planned after <paramref name="previous"/> on the target.</summary>
    private async Task<int> WaitForRunAsync(int previous, CancellationToken ct)
    {
        for (var i = 0; i < 600; i++)
        {
            var runs = await _operator.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={_fractal.TargetId}", ct);
            if (runs.EnumerateArray().FirstOrDefault(r => r.GetProperty("id").GetInt32() > previous) is { ValueKind: JsonValueKind.Object } run)
            {
                return run.GetProperty("id").GetInt32();
            }

            await Task.Delay(200, ct);
        }

        throw new TimeoutException("the CLI planned no run");
    }

    private async Task<string> WaitForStateAsync(int runId, Func<string, bool> until, CancellationToken ct)
    {
        var state = "";
        for (var i = 0; i < 900; i++)
        {
            state = (await _operator.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}", ct)).GetProperty("state").GetString()!;
            if (until(state))
            {
                return state;
            }

            await Task.Delay(200, ct);
        }

        return state;
    }

    private Task<ProcessRunner.Result> CliAsync(string[] args, string? token = "", TimeSpan? timeout = null) =>
        ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args],
            environment: new Dictionary<string, string?>
            {
                ["UPGRADECONSOLE_URL"] = _app.BaseUrl,
                ["UPGRADECONSOLE_TOKEN"] = token == "" ? _adminToken : token,
                ["DOTNET_ENVIRONMENT"] = "Production",
            },
            workingDirectory: AppContext.BaseDirectory, timeout: timeout ?? TimeSpan.FromMinutes(4), check: false);

    private CliProcess StartCli(string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
            StandardOutputEncoding = System.Text.Encoding.UTF8,
            StandardErrorEncoding = System.Text.Encoding.UTF8,
        };
        foreach (var a in (string[])[Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args])
        {
            start.ArgumentList.Add(a);
        }

        start.Environment["UPGRADECONSOLE_URL"] = _app.BaseUrl;
        start.Environment["UPGRADECONSOLE_TOKEN"] = _adminToken;
        return new CliProcess(System.Diagnostics.Process.Start(start)!);
    }

    /// <summary>The CLI running in the background, its output collected as it comes.</summary>
    private sealed class CliProcess : IDisposable
    {
        private readonly System.Text.StringBuilder _out = new();
        private readonly System.Text.StringBuilder _err = new();

        public CliProcess(System.Diagnostics.Process process)
        {
            Process = process;
            process.OutputDataReceived += (_, e) => { lock (_out) { _out.Append(e.Data).Append('\n'); } };
            process.ErrorDataReceived += (_, e) => { lock (_err) { _err.Append(e.Data).Append('\n'); } };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public System.Diagnostics.Process Process { get; }

        private string Error { get { lock (_err) { return _err.ToString(); } } }

        private string Output { get { lock (_out) { return _out.ToString(); } } }

        public async Task WaitForErrorAsync(string text, TimeSpan timeout)
        {
            var started = TimeProvider.System.GetTimestamp();
            while (!Error.Contains(text, StringComparison.Ordinal))
            {
                Assert.True(TimeProvider.System.GetElapsedTime(started) < timeout && !Process.HasExited, $"the CLI did not say '{text}':\n{Output}\n{Error}");
                await Task.Delay(100);
            }
        }

        public async Task<ProcessRunner.Result> WaitAsync(TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            await Process.WaitForExitAsync(cts.Token);
            Process.WaitForExit();
            return new ProcessRunner.Result(Process.ExitCode, Output, Error);
        }

        public void Dispose()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
            }

            Process.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _admin.Dispose();
        _operator.Dispose();
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
