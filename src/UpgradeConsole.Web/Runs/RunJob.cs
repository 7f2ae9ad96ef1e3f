using Quartz;

namespace UpgradeConsole.Web.Runs;

/// <summary>
/// The Quartz job that drives one run. Stored in the dashboard's database and marked for recovery:
/// if the dashboard dies while it runs, the next start runs it again and the driver reattaches.
/// </summary>
[DisallowConcurrentExecution]
public sealed class RunJob(RunDriver driver) : IJob
{
    public const string RunIdKey = "runId";

    public static JobKey KeyFor(int runId) => new($"run-{runId}", "runs");

    public ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default) =>
        new(driver.ExecuteAsync(context.MergedJobDataMap.GetInt(RunIdKey), cancellationToken));

    /// <summary>Asks the scheduler to drive <paramref name="runId"/> now (or as soon as its current execution ends).</summary>
    public static async Task ScheduleAsync(ISchedulerFactory schedulers, int runId, CancellationToken ct)
    {
        var scheduler = await schedulers.GetScheduler(ct);
        var job = JobBuilder.Create<RunJob>()
            .WithIdentity(KeyFor(runId))
            .UsingJobData(RunIdKey, runId)
            .RequestRecovery()
            .StoreDurably()
            .Build();
        var trigger = TriggerBuilder.Create()
            .WithIdentity($"run-{runId}-{Guid.NewGuid():N}", "runs")
            .ForJob(job)
            .StartNow()
            .Build();
        await scheduler.ScheduleJob(job, trigger, new ScheduleJobOptions { Replace = true }, ct);
    }
}
