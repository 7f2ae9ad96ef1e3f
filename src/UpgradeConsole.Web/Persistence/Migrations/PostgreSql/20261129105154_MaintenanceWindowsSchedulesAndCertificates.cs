using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.PostgreSql
{
    /// <inheritdoc />
    public partial class MaintenanceWindowsSchedulesAndCertificates : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "HostCertificateAuthority",
                table: "Targets",
                type: "character varying(100)",
                maxLength: 100,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "MaintenanceWindows",
                table: "Targets",
                type: "character varying(2000)",
                maxLength: 2000,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "TimeZone",
                table: "Targets",
                type: "character varying(100)",
                maxLength: 100,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "UserCertificate",
                table: "Targets",
                type: "character varying(16000)",
                maxLength: 16000,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "ScheduleJobId",
                table: "Runs",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "ScheduledAt",
                table: "Runs",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "ScheduledBy",
                table: "Runs",
                type: "text",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "HostCertificateAuthority",
                table: "Targets");

            migrationBuilder.DropColumn(
                name: "MaintenanceWindows",
                table: "Targets");

            migrationBuilder.DropColumn(
                name: "TimeZone",
                table: "Targets");

            migrationBuilder.DropColumn(
                name: "UserCertificate",
                table: "Targets");

            migrationBuilder.DropColumn(
                name: "ScheduleJobId",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "ScheduledAt",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "ScheduledBy",
                table: "Runs");
        }
    }
}
