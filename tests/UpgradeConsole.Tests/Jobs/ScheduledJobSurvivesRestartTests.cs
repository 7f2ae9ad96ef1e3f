using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Quartz;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Jobs;

/// <summary>A job scheduled before the dashboard stops runs after it starts again: Quartz keeps it in the dashboard's database.</summary>
public sealed class ScheduledJobSurvivesRestartTests(PostgresServer postgres)
{
    public static TheoryData<DatabaseProvider> Providers => [DatabaseProvider.Sqlite, DatabaseProvider.PostgreSQL];

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task JobScheduledBeforeRestart_RunsAfterRestart(DatabaseProvider provider)
    {
        var connectionString = provider == DatabaseProvider.PostgreSQL ? await postgres.CreateDatabaseAsync() : null;
        var dataDirectory = Directory.CreateTempSubdirectory("uc-quartz-").FullName;
        var key = Guid.NewGuid().ToString("N");
        var ran = RecordingJob.Expect(key);
        try
        {
            await using (var first = new UpgradeConsoleApplicationFactory(provider, connectionString, dataDirectory))
            {
                var scheduler = await first.Services.GetRequiredService<ISchedulerFactory>().GetScheduler();
                var meta = await scheduler.GetMetadata();
                Assert.True(meta.JobStorePersistent);
                Assert.Equal(provider == DatabaseProvider.PostgreSQL, meta.JobStoreClustered);

                var job = JobBuilder.Create<RecordingJob>().WithIdentity(key, "tests").UsingJobData("key", key).StoreDurably().Build();
                var trigger = TriggerBuilder.Create().WithIdentity(key, "tests")
                    .StartAt(TimeProvider.System.GetUtcNow().AddSeconds(3)).Build();
                await scheduler.ScheduleJob(job, trigger);
            }

            // Stopped before the trigger fired.
            Assert.False(ran.Task.IsCompleted);
            await Task.Delay(TimeSpan.FromSeconds(4), TestContext.Current.CancellationToken);
            Assert.False(ran.Task.IsCompleted);

            await using var second = new UpgradeConsoleApplicationFactory(provider, connectionString, dataDirectory);
            _ = second.Services; // start the host and with it the scheduler
            await ran.Task.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }
}

/// <summary>A job that reports that it ran, keyed by the data it was scheduled with.</summary>
public sealed class RecordingJob : IJob
{
    private static readonly ConcurrentDictionary<string, TaskCompletionSource> Runs = new();

    public static TaskCompletionSource Expect(string key) =>
        Runs.GetOrAdd(key, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        Expect(context.MergedJobDataMap.GetString("key")!).TrySetResult();
        return ValueTask.CompletedTask;
    }
}
