using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class TargetRequirePassingRehearsalWithin : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<TimeSpan>(
                name: "RequirePassingRehearsalWithin",
                table: "Targets",
                type: "TEXT",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "RequirePassingRehearsalWithin",
                table: "Targets");
        }
    }
}
