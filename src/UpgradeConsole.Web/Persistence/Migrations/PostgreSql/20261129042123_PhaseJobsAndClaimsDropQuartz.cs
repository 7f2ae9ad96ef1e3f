using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.PostgreSql
{
    /// <inheritdoc />
    public partial class PhaseJobsAndClaimsDropQuartz : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Quartz.NET made its own tables in this database; Hangfire keeps its own elsewhere.
            LegacyQuartzTables.Drop(migrationBuilder);

            migrationBuilder.AddColumn<string>(
                name: "JobId",
                table: "RunPhases",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<DateTime>(
                name: "LeaseExpiresAt",
                table: "RunPhases",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "LeaseOwner",
                table: "RunPhases",
                type: "character varying(200)",
                maxLength: 200,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "JobId",
                table: "RunPhases");

            migrationBuilder.DropColumn(
                name: "LeaseExpiresAt",
                table: "RunPhases");

            migrationBuilder.DropColumn(
                name: "LeaseOwner",
                table: "RunPhases");
        }
    }
}
