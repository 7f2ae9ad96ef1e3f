using System.Collections.Concurrent;
using Hangfire;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Jobs;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Jobs;

/// <summary>
/// A job scheduled before the dashboard stops runs after it starts again: Hangfire keeps it in its own
/// storage (SQLite: a private file in the data directory; PostgreSQL: the schema <c>hangfire</c> of the
/// dashboard's database), created at start with no manual step.
/// </summary>
public sealed class ScheduledJobSurvivesRestartTests(PostgresServer postgres)
{
    public static TheoryData<DatabaseProvider> Providers => [DatabaseProvider.Sqlite, DatabaseProvider.PostgreSQL];

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task JobScheduledBeforeRestart_RunsAfterRestart(DatabaseProvider provider)
    {
        var connectionString = provider == DatabaseProvider.PostgreSQL ? await postgres.CreateDatabaseAsync() : null;
        var dataDirectory = Directory.CreateTempSubdirectory("uc-jobs-").FullName;
        var key = Guid.NewGuid().ToString("N");
        var ran = RecordingJob.Expect(key);
        try
        {
            await using (var first = new UpgradeConsoleApplicationFactory(provider, connectionString, dataDirectory))
            {
                var jobs = first.Services.GetRequiredService<IBackgroundJobClient>();
                jobs.Schedule(() => RecordingJob.Record(key), TimeSpan.FromSeconds(3));
                if (provider == DatabaseProvider.Sqlite)
                {
                    var file = Path.Combine(dataDirectory, JobsSetup.SqliteFile);
                    Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
                    Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dataDirectory));
                }
                else
                {
                    await using var connection = new NpgsqlConnection(connectionString);
                    await connection.OpenAsync(TestContext.Current.CancellationToken);
                    await using var tables = new NpgsqlCommand("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'hangfire' AND table_name = 'job'", connection);
                    Assert.Equal(1L, await tables.ExecuteScalarAsync(TestContext.Current.CancellationToken));
                    await using var quartz = new NpgsqlCommand("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'qrtz%'", connection);
                    Assert.Equal(0L, await quartz.ExecuteScalarAsync(TestContext.Current.CancellationToken));
                }
            }

            // Stopped before it was due.
            Assert.False(ran.Task.IsCompleted);
            await Task.Delay(TimeSpan.FromSeconds(4), TestContext.Current.CancellationToken);
            Assert.False(ran.Task.IsCompleted);

            await using var second = new UpgradeConsoleApplicationFactory(provider, connectionString, dataDirectory);
            _ = second.Services; // start the host and with it the Hangfire server
            await ran.Task.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }
}

/// <summary>A job that reports that it ran, keyed by its argument.</summary>
public static class RecordingJob
{
    private static readonly ConcurrentDictionary<string, TaskCompletionSource> Runs = new();

    public static TaskCompletionSource Expect(string key) =>
        Runs.GetOrAdd(key, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public static void Record(string key) => Expect(key).TrySetResult();
}
