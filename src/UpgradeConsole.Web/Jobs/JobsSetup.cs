using Quartz;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Jobs;

/// <summary>
/// Quartz.NET with its persistent store in the dashboard's own database, so scheduled and running
/// jobs survive a restart; on PostgreSQL the nodes form a cluster that recovers each other's jobs.
/// </summary>
public static class JobsSetup
{
    public static WebApplicationBuilder AddJobs(this WebApplicationBuilder builder)
    {
        var (_, database) = builder.StorageSettings();

        builder.AddQuartz(q =>
        {
            q.ConfigureScheduler(o => o.InstanceName = "UpgradeConsole");
            q.UsePersistentStore(s =>
            {
                s.UseSystemTextJsonSerializer();
                s.ProvisionSchema();
                switch (database.Provider)
                {
                    case DatabaseProvider.Sqlite:
                        s.UseSqlite(database.ConnectionString);
                        break;
                    case DatabaseProvider.PostgreSQL:
                        s.UsePostgres(database.ConnectionString);
                        // Several dashboard nodes share the database: a node that dies has its jobs recovered by another.
                        s.UseClustering();
                        break;
                    default:
                        throw new InvalidOperationException($"Unknown database provider {database.Provider}.");
                }
            });
        });
        builder.AddQuartzHostedService(o => o.WaitForJobsToComplete = false);
        return builder;
    }
}
