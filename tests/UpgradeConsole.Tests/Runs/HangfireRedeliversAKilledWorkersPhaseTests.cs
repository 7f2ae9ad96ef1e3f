using System.Data.Common;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// The dashboard process whose Hangfire worker runs the <c>pip install</c> phase is killed (SIGKILL), and a
/// dashboard with the project's own recovery job switched off (<c>Runs:Recovery=false</c>) starts on the same
/// storage. Only Hangfire can bring the phase back: its queue hands the same job out again once the job's
/// invisibility timeout has passed (<c>Jobs:InvisibilityTimeout</c>, short here; PostgreSQL: sliding, kept
/// alive by the dead worker until it died; SQLite: counted from the fetch). The redelivered job claims the
/// phase (the dead node's claim has run out or, on SQLite, was released at start), the driver finds the step's
/// start marker on the host and reattaches: pip runs once and every line of it is stored once.
/// </summary>
public sealed class HangfireRedeliversAKilledWorkersPhaseTests(SshServer ssh, PostgresServer postgres) : IAsyncDisposable
{
    private const int SlowLines = 15;
    private static readonly TimeSpan InvisibilityTimeout = TimeSpan.FromSeconds(20);
    private readonly string _data = Directory.CreateTempSubdirectory("uc-redeliver-").FullName;
    private FractalTarget? _fractal;

    public static TheoryData<DatabaseProvider> Providers => [DatabaseProvider.Sqlite, DatabaseProvider.PostgreSQL];

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task TheSameJobDeliveredAgainByHangfire_ReattachesAndRunsTheStepOnce(DatabaseProvider provider)
    {
        var connectionString = provider == DatabaseProvider.PostgreSQL ? await postgres.CreateDatabaseAsync() : null;
        var settings = new Dictionary<string, string>
        {
            ["Runs:Recovery"] = "false",
            // A lease well under the invisibility timeout: when Hangfire hands the job out again the dead node's claim is gone.
            ["Runs:PhaseLease"] = "00:00:06",
            ["Runs:PhaseHeartbeat"] = "00:00:02",
            ["Jobs:InvisibilityTimeout"] = InvisibilityTimeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture),
        };
        if (provider == DatabaseProvider.PostgreSQL)
        {
            settings["Database:Provider"] = "PostgreSQL";
            settings["ConnectionStrings:UpgradeConsole"] = connectionString!;
        }

        int runId;
        string token;
        await using (var app = new UpgradeConsoleApplicationFactory(provider, connectionString, _data))
        {
            var admin = await app.CreateFirstAdminAsync();
            _fractal = await FractalTarget.CreateAsync(app, admin, ssh, postgres);
            await _fractal.PrepareForUpgradeAsync(ssh);
            runId = await PlanSlowPipRunAsync(app, _fractal);
            token = await ApiTokens.CreateAsync(app, UpgradeConsoleApplicationFactory.AdminEmail, "redelivery test", "Operator");
        }

        string jobBefore;
        int killedPid;
        Stopwatch started;
        await using (var first = await DashboardProcess.StartAsync(_data, settings))
        {
            var client = await first.SignInAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
            started = Stopwatch.StartNew();
            using (var api = ApiTokens.Client(first.BaseUrl, token))
            {
                using var start = await api.PostAsync($"/api/v1/runs/{runId}/start", null);
                Assert.True(start.IsSuccessStatusCode, $"start answered {(int)start.StatusCode}: {await start.Content.ReadAsStringAsync()}");
            }

            await Eventually.TrueAsync(async () => (await client.GetStringAsync($"/runs/{runId}/log.txt")).Contains("slow-pip line 3", StringComparison.Ordinal),
                TimeSpan.FromMinutes(3), () => first.Output);
            var (job, owner) = await PipPhaseAsync(provider, connectionString, runId);
            Assert.Contains($":{first.ProcessId}:", owner, StringComparison.Ordinal);
            jobBefore = job;
            killedPid = first.ProcessId;
            await first.KillAsync();
        }

        var killed = Stopwatch.StartNew();
        await using var second = await DashboardProcess.StartAsync(_data, settings);
        var secondClient = await second.SignInAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        await Eventually.TrueAsync(async () => (await secondClient.GetStringAsync($"/runs/{runId}/log.txt")).Contains("continuing after an interruption", StringComparison.Ordinal),
            TimeSpan.FromMinutes(3), () => second.Output);
        var redelivered = killed.Elapsed;
        var sinceStart = started.Elapsed;
        TestContext.Current.TestOutputHelper?.WriteLine($"{provider}: Hangfire delivered the phase's job again {redelivered.TotalSeconds:0.0} s after the kill");
        // Not before the invisibility timeout: nothing but Hangfire's redelivery brought the phase back. PostgreSQL's
        // timeout slides (the worker kept the job invisible until it died, renewing every fifth of it); SQLite's
        // counts from the fetch, which came after the run was started.
        if (provider == DatabaseProvider.PostgreSQL)
        {
            Assert.True(redelivered >= InvisibilityTimeout * 0.75, $"continued {redelivered.TotalSeconds:0.0} s after the kill, before Hangfire could deliver the job again");
        }
        else
        {
            Assert.True(sinceStart >= InvisibilityTimeout, $"continued {sinceStart.TotalSeconds:0.0} s after the start, before Hangfire could deliver the job again");
        }

        var state = "";
        using var secondApi = ApiTokens.Client(second.BaseUrl, token);
        await Eventually.TrueAsync(async () => (state = (await secondApi.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}")).GetProperty("state").GetString()!) is not ("Running" or "Planned"),
            TimeSpan.FromMinutes(4), () => second.Output);
        var log = await secondClient.GetStringAsync($"/runs/{runId}/log.txt");
        Assert.True(state == "WaitingForChecklist", $"run is {state}\n{log}\n{second.Output}");

        // The same Hangfire job, now run by the second process: no new job was enqueued for the phase.
        var (jobAfter, ownerAfter) = await PipPhaseAsync(provider, connectionString, runId);
        Assert.Equal(jobBefore, jobAfter);
        Assert.Contains($":{second.ProcessId}:", ownerAfter, StringComparison.Ordinal);
        var details = await secondClient.GetStringAsync($"/jobs/jobs/details/{jobAfter}");
        Assert.Contains($":{killedPid}:", details, StringComparison.Ordinal);
        Assert.Contains($":{second.ProcessId}:", details, StringComparison.Ordinal);

        // The step ran once on the host, and each of its lines is stored once.
        var lines = log.Split('\n');
        for (var i = 1; i <= SlowLines; i++)
        {
            Assert.Equal(1, lines.Count(l => l == $"slow-pip line {i}"));
        }

        Assert.Single(lines, l => l == "Successfully installed fractal-server-2.17.0");
        Assert.Single(lines, l => l.Contains("continuing after an interruption", StringComparison.Ordinal));
        Assert.Equal("called", (await ssh.RunAsync($"cat {await _fractal.Host.AbsoluteDirectoryAsync()}/pip-calls")).StandardOutput.Trim());
    }

    /// <summary>
    /// Puts a Python in front of the target's that counts its <c>pip install</c> calls on the host (<c>pip-calls</c>) and
    /// prints a line a second meanwhile, then plans the first runbook as the Admin (the plan page's service).
    /// </summary>
    private async Task<int> PlanSlowPipRunAsync(UpgradeConsoleApplicationFactory app, FractalTarget fractal)
    {
        var home = await fractal.Host.AbsoluteDirectoryAsync();
        await fractal.Host.WriteFileAsync("venv/bin/python-slow", $$"""
            #!/bin/bash
            if [ "${1:-}" = "-m" ] && [ "${2:-}" = "pip" ] && [ "${3:-}" = "install" ]; then
              echo called >> {{home}}/pip-calls
              for i in $(seq 1 {{SlowLines}}); do echo "slow-pip line $i"; sleep 1; done
            fi
            exec "$(dirname "$0")/python" "$@"
            """);
        Assert.Equal(0, (await ssh.RunAsync($"chmod 755 {home}/venv/bin/python-slow")).ExitCode);
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var target = await db.Targets.SingleAsync(t => t.Id == fractal.TargetId);
            target.PythonPath = $"{home}/venv/bin/python-slow";
            await db.SaveChangesAsync();
        }

        var runbook = app.Services.GetRequiredService<RunbookCatalog>().All[0].Id;
        var result = await app.AsAsync<RunService, RunResult>(UpgradeConsoleApplicationFactory.AdminEmail,
            (runs, actor) => runs.PlanAsync(fractal.TargetId, runbook, null, null, new Dictionary<string, string>(), actor, CancellationToken.None));
        Assert.True(result.Succeeded, "Planning failed: " + result.Error);
        return result.RunId!.Value;
    }

    /// <summary>The pip phase's Hangfire job id and the node that last claimed it, read from the dashboard's database.</summary>
    private async Task<(string Job, string Owner)> PipPhaseAsync(DatabaseProvider provider, string? connectionString, int runId)
    {
        await using DbConnection connection = provider == DatabaseProvider.PostgreSQL
            ? new NpgsqlConnection(connectionString)
            : new SqliteConnection($"Data Source={Path.Combine(_data, "upgradeconsole.db")};Mode=ReadOnly");
        await connection.OpenAsync();
        await using var query = connection.CreateCommand();
        query.CommandText = """SELECT "JobId", "LeaseOwner" FROM "RunPhases" WHERE "RunId" = @run AND "Key" = 'pip-install'""";
        var run = query.CreateParameter();
        run.ParameterName = "@run";
        run.Value = runId;
        query.Parameters.Add(run);
        await using var reader = await query.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return (reader.GetString(0), reader.GetString(1));
    }

    public async ValueTask DisposeAsync()
    {
        if (_fractal is not null)
        {
            await _fractal.DisposeAsync();
        }

        Directory.Delete(_data, recursive: true);
    }
}
