using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.Sqlite
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
                type: "TEXT",
                maxLength: 100,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "MaintenanceWindows",
                table: "Targets",
                type: "TEXT",
                maxLength: 2000,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "TimeZone",
                table: "Targets",
                type: "TEXT",
                maxLength: 100,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "UserCertificate",
                table: "Targets",
                type: "TEXT",
                maxLength: 16000,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "ScheduleJobId",
                table: "Runs",
                type: "TEXT",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "ScheduledAt",
                table: "Runs",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "ScheduledBy",
                table: "Runs",
                type: "TEXT",
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
