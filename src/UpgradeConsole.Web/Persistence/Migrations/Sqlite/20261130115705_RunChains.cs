using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class RunChains : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "ChainHopsJson",
                table: "Runs",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "ChainId",
                table: "Runs",
                type: "TEXT",
                maxLength: 32,
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "ChainIndex",
                table: "Runs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "ChainLength",
                table: "Runs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "ChainPreviousRunId",
                table: "Runs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "ChainStop",
                table: "Runs",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "ChainTo",
                table: "Runs",
                type: "TEXT",
                maxLength: 64,
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "IX_Runs_ChainId_ChainIndex",
                table: "Runs",
                columns: new[] { "ChainId", "ChainIndex" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_Runs_ChainId_ChainIndex",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "ChainHopsJson",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "ChainId",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "ChainIndex",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "ChainLength",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "ChainPreviousRunId",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "ChainStop",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "ChainTo",
                table: "Runs");
        }
    }
}
