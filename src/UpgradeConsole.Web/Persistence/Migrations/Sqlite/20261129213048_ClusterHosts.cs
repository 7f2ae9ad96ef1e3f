using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class ClusterHosts : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "ClusterHosts",
                columns: table => new
                {
                    Id = table.Column<int>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    TargetId = table.Column<int>(type: "INTEGER", nullable: false),
                    Roles = table.Column<string>(type: "TEXT", maxLength: 200, nullable: false),
                    Host = table.Column<string>(type: "TEXT", maxLength: 253, nullable: false),
                    Port = table.Column<int>(type: "INTEGER", nullable: false),
                    User = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    PythonEnv = table.Column<string>(type: "TEXT", maxLength: 1000, nullable: false),
                    ConfigPath = table.Column<string>(type: "TEXT", maxLength: 1000, nullable: false),
                    StopCommand = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: false),
                    StartCommand = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: false),
                    StatusCommand = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: false),
                    HostKeyState = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    PinnedKeyType = table.Column<string>(type: "TEXT", maxLength: 100, nullable: true),
                    PinnedKey = table.Column<string>(type: "TEXT", nullable: true),
                    PinnedFingerprint = table.Column<string>(type: "TEXT", maxLength: 100, nullable: true),
                    PinnedAt = table.Column<DateTimeOffset>(type: "TEXT", nullable: true),
                    PinnedBy = table.Column<string>(type: "TEXT", maxLength: 256, nullable: true),
                    MismatchSeenAt = table.Column<DateTimeOffset>(type: "TEXT", nullable: true),
                    CreatedAt = table.Column<DateTimeOffset>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_ClusterHosts", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_ClusterHosts_TargetId_Host_Port",
                table: "ClusterHosts",
                columns: new[] { "TargetId", "Host", "Port" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "ClusterHosts");
        }
    }
}
