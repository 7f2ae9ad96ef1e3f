using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class SshTransportAndKeyPassphrase : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "ProtectedKeyPassphrase",
                table: "Targets",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Transport",
                table: "Targets",
                type: "TEXT",
                maxLength: 20,
                nullable: false,
                defaultValue: "OpenSsh");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "ProtectedKeyPassphrase",
                table: "Targets");

            migrationBuilder.DropColumn(
                name: "Transport",
                table: "Targets");
        }
    }
}
