using Hangfire;
using Hangfire.AspNetCore;
using Hangfire.PostgreSql;
using Hangfire.PostgreSql.Factories;
using Hangfire.Storage.SQLite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Jobs;

/// <summary>
/// Hangfire: on PostgreSQL its storage is the schema <c>hangfire</c> of the dashboard's database (several
/// nodes share the queue and pick up each other's jobs); on SQLite, its own file <c>hangfire.db</c> in the
/// data directory. Both create their tables at start. The dashboard's database stays the source of truth
/// of every run; Hangfire is the queue (see <see cref="RunJob"/>). Its dashboard is at <c>/jobs</c>.
/// </summary>
public static class JobsSetup
{
    public const string DashboardPath = "/jobs";

    /// <summary>
    /// The strict policy but for inline styles: Hangfire's pages carry style attributes (its scripts come
    /// from /jobs/js… and its configuration from data attributes, so scripts stay 'self' only).
    /// </summary>
    public const string DashboardContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; " +
        "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

    /// <summary>The PostgreSQL schema of Hangfire's tables.</summary>
    public const string PostgresSchema = "hangfire";

    /// <summary>The SQLite file of Hangfire's storage, in the data directory.</summary>
    public const string SqliteFile = "hangfire.db";

    public static WebApplicationBuilder AddJobs(this WebApplicationBuilder builder)
    {
        var (data, database) = builder.StorageSettings();
        var services = builder.Services;
        services.AddOptions<RunJobOptions>().BindConfiguration(RunJobOptions.Section)
            .Validate(o => o.PhaseHeartbeat > TimeSpan.Zero && o.PhaseHeartbeat * 2 <= o.PhaseLease,
                "Runs:PhaseHeartbeat must be positive and at most half of Runs:PhaseLease, so a live node never loses its claim.")
            .ValidateOnStart();
        services.AddOptions<JobsOptions>().BindConfiguration(JobsOptions.Section)
            .Validate(o => o.InvisibilityTimeout is null || o.InvisibilityTimeout > TimeSpan.Zero, "Jobs:InvisibilityTimeout must be positive.")
            .ValidateOnStart();
        services.AddOptions<HousekeepingOptions>().BindConfiguration(HousekeepingOptions.Section);
        services.AddScoped<RunJob>();
        services.AddScoped<ScheduledStartJob>();
        services.AddScoped<Chains.ChainJob>();
        services.AddScoped<Housekeeping>();
        services.AddScoped<StepDirectoryCleanup>();

        // Registered here, not through GlobalConfiguration: the storage and the activator are this host's
        // own (tests run several dashboards in one process; Hangfire's defaults are process-wide statics).
        services.AddSingleton<JobStorage>(sp =>
        {
            // Hangfire's configuration (this host's logging among it) first: the storage logs as it starts.
            sp.GetRequiredService<IGlobalConfiguration>();
            return CreateStorage(data, database, sp.GetRequiredService<IOptions<JobsOptions>>().Value);
        });
        services.AddSingleton<JobActivator>(sp => new AspNetCoreJobActivator(sp.GetRequiredService<IServiceScopeFactory>()));
        services.AddHangfire((sp, c) => c
            .UseLogProvider(new HangfireLogging(sp.GetRequiredService<ILoggerFactory>()))
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings());
        services.AddHangfireServer((sp, o) =>
        {
            o.ServerName = sp.GetRequiredService<DashboardNode>().Name;
            o.WorkerCount = 4;
            // Recurring jobs are looked at this often (the run recovery is every 15 s).
            o.SchedulePollingInterval = TimeSpan.FromSeconds(5);
            // A graceful stop leaves running phases to their checkpoint at once (they resume after).
            o.ShutdownTimeout = TimeSpan.FromSeconds(5);
        });
        services.AddHostedService<RecurringJobsAtStart>();
        return builder;
    }

    // One return type for both storages: the callers see Hangfire's JobStorage only.
#pragma warning disable CA1859
    private static JobStorage CreateStorage(DataDirectory data, DatabaseOptions database, JobsOptions jobs)
    {
        switch (database.Provider)
        {
            case DatabaseProvider.PostgreSQL:
                var options = new PostgreSqlStorageOptions
                {
                    SchemaName = PostgresSchema,
                    PrepareSchemaIfNecessary = true,
                    // Workers wait on LISTEN/NOTIFY for new jobs instead of polling every few seconds.
                    EnableLongPolling = true,
                    QueuePollInterval = TimeSpan.FromSeconds(1),
                    // A job a dead node was running is delivered again after this (its claim makes that harmless).
                    UseSlidingInvisibilityTimeout = true,
                    InvisibilityTimeout = jobs.InvisibilityTimeout ?? JobsOptions.PostgresInvisibilityTimeout,
                };
                return new PostgreSqlStorage(new NpgsqlConnectionFactory(database.ConnectionString, options), options);
            case DatabaseProvider.Sqlite:
                var file = data.Combine(SqliteFile);
                CreatePrivateFile(file);
                var storage = new SQLiteStorage(file, new SQLiteStorageOptions
                {
                    // This storage polls its queue (no notification): short, so the next phase starts at once.
                    QueuePollInterval = TimeSpan.FromMilliseconds(100),
                    // Not sliding here: a job still running after this is delivered again even on a live node (its claim makes that harmless).
                    InvisibilityTimeout = jobs.InvisibilityTimeout ?? JobsOptions.SqliteInvisibilityTimeout,
                });
                foreach (var suffix in new[] { "", "-wal", "-shm" })
                {
                    DataDirectory.MakePrivateFile(file + suffix);
                }

                return storage;
            default:
                throw new InvalidOperationException($"Unknown database provider {database.Provider}.");
        }
    }
#pragma warning restore CA1859

    /// <summary>0600 before SQLite opens it (the WAL and shared-memory files it adds take the same mode).</summary>
    private static void CreatePrivateFile(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        if (!File.Exists(path))
        {
            using var _ = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
        }

        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    /// <summary>The Hangfire dashboard at <c>/jobs</c>: Admins may act, Operators only look, Viewers are refused.</summary>
    public static WebApplication MapJobs(this WebApplication app)
    {
        app.MapHangfireDashboard(DashboardPath, new DashboardOptions
        {
            Authorization = [],
            AsyncAuthorization = [new JobsDashboardAuthorization()],
            IsReadOnlyFunc = JobsDashboardAuthorization.IsReadOnly,
            AppPath = "/",
            DashboardTitle = "UpgradeConsole jobs",
            // The connection string holds the database password.
            DisplayStorageConnectionString = false,
        }, app.Services.GetRequiredService<JobStorage>())
            .RequireAuthorization(Policies.Operate)
            .WithMetadata(new ContentSecurityPolicyMetadata(DashboardContentSecurityPolicy));
        return app;
    }
}

/// <summary>How Hangfire's queue hands a job out again.</summary>
public sealed class JobsOptions
{
    public const string Section = "Jobs";

    /// <summary>PostgreSQL's default: sliding (a live node keeps its job invisible), so only a dead node's job comes back.</summary>
    public static readonly TimeSpan PostgresInvisibilityTimeout = TimeSpan.FromMinutes(2);

    /// <summary>SQLite's default (the storage's own): not sliding, so long that a live phase is seldom handed out again.</summary>
    public static readonly TimeSpan SqliteInvisibilityTimeout = TimeSpan.FromMinutes(30);

    /// <summary>
    /// A job fetched by a worker that stopped without finishing it (the process was killed) is delivered again
    /// after this long. Unset: 2 minutes on PostgreSQL, 30 minutes on SQLite.
    /// </summary>
    public TimeSpan? InvisibilityTimeout { get; set; }
}

/// <summary>Registers the recurring jobs once the database is migrated, and resumes runs nobody holds.</summary>
internal sealed class RecurringJobsAtStart(
    IRecurringJobManager recurring,
    IServiceScopeFactory scopes,
    IOptions<DatabaseOptions> database,
    IOptions<RunJobOptions> runs,
    ILogger<RecurringJobsAtStart> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (runs.Value.Recovery)
        {
            recurring.AddOrUpdate<RunJob>(RunJob.RecoverJobId, j => j.RecoverAsync(CancellationToken.None), "*/15 * * * * *");
        }
        else
        {
            // The storage is shared and outlives this process: a registration from an earlier start would go on running.
            recurring.RemoveIfExists(RunJob.RecoverJobId);
            logger.LogWarning("Run recovery is off (Runs:Recovery): a dead node's phase comes back only through Hangfire's redelivery");
        }

        recurring.AddOrUpdate<Housekeeping>(Housekeeping.JobId, h => h.RunAsync(CancellationToken.None), Cron.Daily(3));
        recurring.AddOrUpdate<StepDirectoryCleanup>(StepDirectoryCleanup.JobId, h => h.RunAsync(CancellationToken.None), Cron.Daily(3, 30));
        // Hourly: a rehearsal's copy holds disk room (a database, a venv, a dump) on a target that was away at its end.
        recurring.AddOrUpdate<Rehearsals.RehearsalLeftovers>(Rehearsals.RehearsalLeftovers.JobId, h => h.RunAsync(CancellationToken.None), Cron.Hourly(20));

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        if (database.Value.Provider == DatabaseProvider.Sqlite)
        {
            // SQLite serves one node: a claim found at start is from a process that is gone (killed, crashed).
            var released = await db.RunPhases.Where(p => p.LeaseExpiresAt != null)
                .ExecuteUpdateAsync(s => s.SetProperty(p => p.LeaseExpiresAt, (DateTime?)null), cancellationToken);
            if (released > 0)
            {
                logger.LogWarning("Released {Count} phase claim(s) left by a dashboard that stopped without ending them", released);
            }
        }

        if (runs.Value.Recovery)
        {
            await scope.ServiceProvider.GetRequiredService<RunJob>().RecoverAsync(cancellationToken);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
