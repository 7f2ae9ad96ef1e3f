using System.Text.RegularExpressions;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// The dashboard process is killed (SIGKILL) while <c>pip install</c> prints on the target, and
/// started again (SQLite and PostgreSQL): the phase job is enqueued again once its claim is released (SQLite: at start) or ran out (PostgreSQL), reattaches to the step still running on the host, and
/// the run completes with every log line stored exactly once, in order.
/// </summary>
public sealed partial class DashboardKilledDuringARunTests(SshServer ssh, PostgresServer postgres) : IAsyncDisposable
{
    private const int SlowLines = 12;
    private readonly string _data = Directory.CreateTempSubdirectory("uc-kill-").FullName;
    private FractalTarget? _fractal;

    public static TheoryData<DatabaseProvider> Providers => [DatabaseProvider.Sqlite, DatabaseProvider.PostgreSQL];

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task TheRunContinuesAfterARestart_WithNoLostOrDuplicatedLogLine(DatabaseProvider provider)
    {
        var connectionString = provider == DatabaseProvider.PostgreSQL ? await postgres.CreateDatabaseAsync() : null;
        var settings = provider == DatabaseProvider.PostgreSQL
            ? new Dictionary<string, string> { ["Database:Provider"] = "PostgreSQL", ["ConnectionStrings:UpgradeConsole"] = connectionString! }
            : null;

        // Set up with the in-process dashboard on a data directory (and database) the real processes reuse.
        int runId;
        string token;
        await using (var app = new UpgradeConsoleApplicationFactory(provider, connectionString, _data))
        {
            var admin = await app.CreateFirstAdminAsync();
            _fractal = await FractalTarget.CreateAsync(app, admin, ssh, postgres);
            await _fractal.PrepareForUpgradeAsync(ssh);

            // pip goes through a Python that prints a line a second while it installs, so the kill lands mid-step.
            var venvBin = $"{await _fractal.Host.AbsoluteDirectoryAsync()}/venv/bin";
            await _fractal.Host.WriteFileAsync("venv/bin/python-slow", $$"""
                #!/bin/bash
                if [ "${1:-}" = "-m" ] && [ "${2:-}" = "pip" ] && [ "${3:-}" = "install" ]; then
                  for i in $(seq 1 {{SlowLines}}); do echo "slow-pip line $i"; sleep 1; done
                fi
                exec "$(dirname "$0")/python" "$@"
                """);
            Assert.Equal(0, (await ssh.RunAsync($"chmod 755 {venvBin}/python-slow")).ExitCode);
            await using (var scope = app.Services.CreateAsyncScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
                var target = await db.Targets.SingleAsync(t => t.Id == _fractal.TargetId);
                target.PythonPath = $"{venvBin}/python-slow";
                await db.SaveChangesAsync();
            }

            runId = await SlowPipRun.PlanAsAdminAsync(app, _fractal.TargetId);
            token = await ApiTokens.CreateAsync(app, UpgradeConsoleApplicationFactory.AdminEmail, "starts the run", "Operator");
        }

        // Process A starts the run and is killed while pip prints.
        await using (var first = await DashboardProcess.StartAsync(_data, settings))
        {
            var client = await first.SignInAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
            using var start = await SlowPipRun.ActAsync(first.BaseUrl, token, runId, "start");
            await WaitForAsync(async () => (await client.GetStringAsync($"/runs/{runId}/log.txt")).Contains("slow-pip line 3", StringComparison.Ordinal),
                TimeSpan.FromMinutes(3), () => first.Output);
            await first.KillAsync();
        }

        var killed = System.Diagnostics.Stopwatch.StartNew();

        // The step keeps printing on the target while no dashboard runs.
        await Task.Delay(TimeSpan.FromSeconds(2));

        // Process B recovers the job and finishes the run.
        await using (var second = await DashboardProcess.StartAsync(_data, settings))
        {
            var client = await second.SignInAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
            // SQLite: the claim of the killed process is released at start; PostgreSQL: it runs out (30 s lease).
            await WaitForAsync(async () => (await client.GetStringAsync($"/runs/{runId}/log.txt")).Contains("continuing after an interruption", StringComparison.Ordinal),
                TimeSpan.FromMinutes(2), () => second.Output);
            TestContext.Current.TestOutputHelper?.WriteLine($"{provider}: the phase continued {killed.Elapsed.TotalSeconds:0.0} s after the kill");
            string state = "";
            await WaitForAsync(async () =>
            {
                state = StatePattern().Match(await client.GetStringAsync($"/runs/{runId}")).Groups[1].Value;
                return state is not ("Running" or "Planned");
            }, TimeSpan.FromMinutes(4), () => second.Output);
            var log = await client.GetStringAsync($"/runs/{runId}/log.txt");
            Assert.True(state == "WaitingForChecklist", $"run is {state}\n{log}\n{second.Output}");

            var lines = log.Split('\n');
            for (var i = 1; i <= SlowLines; i++)
            {
                Assert.Equal(1, lines.Count(l => l == $"slow-pip line {i}"));
            }

            Assert.Single(lines, l => l == "Successfully installed fractal-server-2.17.0");
            Assert.Contains(lines, l => l.Contains("continuing after an interruption", StringComparison.Ordinal));
            Assert.Contains("END - all ok.", log, StringComparison.Ordinal);
        }

        // In the database: chunks numbered 1..N without a gap or a repeat, each holding as many lines as its
        // numbers say, remote offsets only growing within the step.
        await using DbConnection connection = provider == DatabaseProvider.PostgreSQL
            ? new NpgsqlConnection(connectionString)
            : new SqliteConnection($"Data Source={Path.Combine(_data, "upgradeconsole.db")};Mode=ReadOnly");
        await connection.OpenAsync();
        await using var query = connection.CreateCommand();
        query.CommandText = """SELECT "FirstSequence", "LastSequence", "PhaseIndex", "RemoteOffset", "Text" FROM "RunLogChunks" WHERE "RunId" = @run ORDER BY "FirstSequence" """;
        var run = query.CreateParameter();
        run.ParameterName = "@run";
        run.Value = runId;
        query.Parameters.Add(run);
        var expected = 1L;
        var offsets = new Dictionary<long, long>();
        await using var reader = await query.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            Assert.Equal(expected, reader.GetInt64(0));
            Assert.Equal(reader.GetInt64(1) - reader.GetInt64(0) + 1, reader.GetString(4).Split('\n').Length);
            expected = reader.GetInt64(1) + 1;
            if (!reader.IsDBNull(3))
            {
                var phase = Convert.ToInt64(reader.GetValue(2), System.Globalization.CultureInfo.InvariantCulture);
                var offset = reader.GetInt64(3);
                Assert.True(!offsets.TryGetValue(phase, out var before) || offset > before, $"offset {offset} after {before} in phase {phase}");
                offsets[phase] = offset;
            }
        }

        Assert.True(expected > 50, $"only {expected - 1} lines stored");
    }

    private static Task WaitForAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> diagnostics) =>
        Eventually.TrueAsync(() => ExplainedAsync(condition, diagnostics), timeout, diagnostics);

    private static async Task<bool> ExplainedAsync(Func<Task<bool>> condition, Func<string> diagnostics)
    {
        try
        {
            return await condition();
        }
        catch (HttpRequestException ex)
        {
            Assert.Fail($"{ex.Message}\n{diagnostics()}");
            throw;
        }
    }

    [GeneratedRegex("""data-testid="run-state"[^>]*>([A-Za-z]+)<""")]
    private static partial Regex StatePattern();

    public async ValueTask DisposeAsync()
    {
        if (_fractal is not null)
        {
            await _fractal.DisposeAsync();
        }

        // The killed process's ssh ControlMaster and agent live under the data directory: end them too.
        await ProcessRunner.RunAsync("pkill", ["-f", _data], check: false);
        Directory.Delete(_data, recursive: true);
    }
}
