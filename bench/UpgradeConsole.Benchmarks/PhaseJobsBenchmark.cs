using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Benchmarks;

/// <summary>
/// Hangfire's overhead on a run: 12 no-op phases, each its own job (claimed, checkpointed, the next job
/// enqueued after the commit, a log line per phase), wall time from the first job's enqueue to the run's
/// success, on SQLite and on PostgreSQL. The phases do nothing, so the figure is scheduling alone.
/// </summary>
internal static class PhaseJobsBenchmark
{
    private const int Phases = 12;

    public static async Task<int> RunAsync(int runs)
    {
        Environment.SetEnvironmentVariable("ASPNETCORE_TEST_CONTENTROOT_UPGRADECONSOLE_WEB", Path.Combine(TestPaths.RepositoryRoot, "src", "UpgradeConsole.Web"));
        await using var postgres = new PostgresServer();
        await postgres.InitializeAsync();
        foreach (var provider in new[] { DatabaseProvider.Sqlite, DatabaseProvider.PostgreSQL })
        {
            var connection = provider == DatabaseProvider.PostgreSQL ? await postgres.CreateDatabaseAsync() : null;
            await using var app = new UpgradeConsoleApplicationFactory(provider, connection, configureServices: services =>
                services.Replace(ServiceDescriptor.Scoped<IRunPhaseDriver, NoOpPhases>()));
            _ = app.Services;
            var times = new List<double>();
            for (var i = 0; i <= runs; i++)
            {
                var (runId, _) = await RunSeed.AddUnheldRunningRunAsync(app.Services,
                    Enumerable.Range(1, Phases).Select(n => ($"noop-{n}", $"No-op {n}", PhaseState.Pending)).ToArray());
                var wall = Stopwatch.StartNew();
                await using (var scope = app.Services.CreateAsyncScope())
                {
                    await scope.ServiceProvider.GetRequiredService<RunJob>().ScheduleAsync(runId, CancellationToken.None);
                }

                while (true)
                {
                    await using var scope = app.Services.CreateAsyncScope();
                    var state = await scope.ServiceProvider.GetRequiredService<AppDbContext>().Runs.Where(r => r.Id == runId).Select(r => r.State).FirstAsync();
                    if (state == RunState.Succeeded)
                    {
                        break;
                    }

                    await Task.Delay(5);
                }

                if (i > 0)
                {
                    // The first run warms the JIT and the connections up.
                    times.Add(wall.Elapsed.TotalMilliseconds);
                }
            }

            times.Sort();
            Console.WriteLine($"{provider}: {Phases} no-op phases, {runs} runs after a warm-up: median {times[times.Count / 2]:0} ms, min {times[0]:0} ms, max {times[^1]:0} ms " +
                $"({times[times.Count / 2] / Phases:0} ms a phase)");
        }

        return 0;
    }

    /// <summary>A phase that does nothing but what every phase does in the database: running, a log line, done, the next one.</summary>
    private sealed class NoOpPhases(AppDbContext db, IServiceScopeFactory scopes, TimeProvider clock) : IRunPhaseDriver
    {
        public async Task<int?> ExecutePhaseAsync(int runId, int phaseIndex, CancellationToken ct)
        {
            var run = await db.Runs.Include(r => r.Phases).FirstAsync(r => r.Id == runId, ct);
            var phase = RunDriver.CurrentPhase(run);
            if (phase is null || phase.Index != phaseIndex)
            {
                return null;
            }

            phase.State = PhaseState.Running;
            phase.StartedAt = clock.GetUtcNow();
            await db.SaveChangesAsync(ct);
            var log = new RunLogWriter(scopes, runId, [], clock);
            await log.WriteAsync(phase, $"── {phase.Title}: done", ct: ct);
            await log.FlushAsync(ct);
            phase.State = PhaseState.Succeeded;
            phase.EndedAt = clock.GetUtcNow();
            var next = RunDriver.CurrentPhase(run);
            if (next is null)
            {
                run.State = RunState.Succeeded;
                run.ActiveTargetId = null;
                run.EndedAt = clock.GetUtcNow();
            }

            await db.SaveChangesAsync(ct);
            return next?.Index;
        }
    }
}
