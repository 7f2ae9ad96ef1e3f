using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.PostgreSql
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
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Transport",
                table: "Targets",
                type: "character varying(20)",
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
