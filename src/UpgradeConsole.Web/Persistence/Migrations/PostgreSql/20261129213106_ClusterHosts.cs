using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.PostgreSql
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
                    Id = table.Column<int>(type: "integer", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    TargetId = table.Column<int>(type: "integer", nullable: false),
                    Roles = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    Host = table.Column<string>(type: "character varying(253)", maxLength: 253, nullable: false),
                    Port = table.Column<int>(type: "integer", nullable: false),
                    User = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    PythonEnv = table.Column<string>(type: "character varying(1000)", maxLength: 1000, nullable: false),
                    ConfigPath = table.Column<string>(type: "character varying(1000)", maxLength: 1000, nullable: false),
                    StopCommand = table.Column<string>(type: "character varying(2000)", maxLength: 2000, nullable: false),
                    StartCommand = table.Column<string>(type: "character varying(2000)", maxLength: 2000, nullable: false),
                    StatusCommand = table.Column<string>(type: "character varying(2000)", maxLength: 2000, nullable: false),
                    HostKeyState = table.Column<string>(type: "character varying(20)", maxLength: 20, nullable: false),
                    PinnedKeyType = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: true),
                    PinnedKey = table.Column<string>(type: "text", nullable: true),
                    PinnedFingerprint = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: true),
                    PinnedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    PinnedBy = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: true),
                    MismatchSeenAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
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
