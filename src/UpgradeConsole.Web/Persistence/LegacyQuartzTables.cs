namespace UpgradeConsole.Web.Persistence;

/// <summary>
/// The tables Quartz.NET 4 created for itself in the dashboard's database (its ProvisionSchema, not our
/// migrations) before Hangfire replaced it (docs/decisions/0011): dropped by the migration
/// PhaseJobsAndClaimsDropQuartz where they exist. Children before the tables they reference.
/// </summary>
internal static class LegacyQuartzTables
{
    private static readonly string[] Tables =
    [
        "qrtz_simple_triggers", "qrtz_cron_triggers", "qrtz_simprop_triggers", "qrtz_blob_triggers",
        "qrtz_fired_triggers", "qrtz_paused_trigger_grps", "qrtz_paused_job_grps", "qrtz_triggers",
        "qrtz_job_status", "qrtz_execution_history", "qrtz_misfire_history", "qrtz_job_details",
        "qrtz_calendars", "qrtz_scheduler_state", "qrtz_locks",
    ];

    public static void Drop(Microsoft.EntityFrameworkCore.Migrations.MigrationBuilder migrationBuilder)
    {
        foreach (var table in Tables)
        {
            migrationBuilder.Sql($"DROP TABLE IF EXISTS {table};");
        }
    }
}
