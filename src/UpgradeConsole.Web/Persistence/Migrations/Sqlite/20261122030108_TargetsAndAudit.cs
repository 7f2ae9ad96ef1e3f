using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class TargetsAndAudit : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "AuditEvents",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false),
                    At = table.Column<DateTimeOffset>(type: "TEXT", nullable: false),
                    Actor = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    Action = table.Column<string>(type: "TEXT", maxLength: 100, nullable: false),
                    TargetId = table.Column<int>(type: "INTEGER", nullable: true),
                    Subject = table.Column<string>(type: "TEXT", maxLength: 500, nullable: true),
                    Details = table.Column<string>(type: "TEXT", nullable: false),
                    PreviousHash = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Hash = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_AuditEvents", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "Targets",
                columns: table => new
                {
                    Id = table.Column<int>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    Name = table.Column<string>(type: "TEXT", maxLength: 100, nullable: false),
                    Product = table.Column<string>(type: "TEXT", maxLength: 50, nullable: false),
                    Host = table.Column<string>(type: "TEXT", maxLength: 253, nullable: false),
                    Port = table.Column<int>(type: "INTEGER", nullable: false),
                    SshUser = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    AuthMethod = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    ProtectedPrivateKey = table.Column<string>(type: "TEXT", nullable: true),
                    PrivateKeyFingerprint = table.Column<string>(type: "TEXT", nullable: true),
                    KeyFilePath = table.Column<string>(type: "TEXT", nullable: true),
                    JumpHost = table.Column<string>(type: "TEXT", nullable: true),
                    WorkingDirectory = table.Column<string>(type: "TEXT", nullable: false),
                    EnvFileName = table.Column<string>(type: "TEXT", nullable: false),
                    PythonPath = table.Column<string>(type: "TEXT", nullable: true),
                    ServerUrl = table.Column<string>(type: "TEXT", nullable: false),
                    ServiceUser = table.Column<string>(type: "TEXT", nullable: true),
                    StopCommand = table.Column<string>(type: "TEXT", nullable: false),
                    StartCommand = table.Column<string>(type: "TEXT", nullable: false),
                    StatusCommand = table.Column<string>(type: "TEXT", nullable: false),
                    RunsDirectory = table.Column<string>(type: "TEXT", nullable: false),
                    HostKeyState = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    PinnedKeyType = table.Column<string>(type: "TEXT", nullable: true),
                    PinnedKey = table.Column<string>(type: "TEXT", nullable: true),
                    PinnedFingerprint = table.Column<string>(type: "TEXT", nullable: true),
                    PinnedAt = table.Column<DateTimeOffset>(type: "TEXT", nullable: true),
                    PinnedBy = table.Column<string>(type: "TEXT", nullable: true),
                    JumpPinnedKeyType = table.Column<string>(type: "TEXT", nullable: true),
                    JumpPinnedKey = table.Column<string>(type: "TEXT", nullable: true),
                    JumpPinnedFingerprint = table.Column<string>(type: "TEXT", nullable: true),
                    MismatchSeenAt = table.Column<DateTimeOffset>(type: "TEXT", nullable: true),
                    MismatchDetail = table.Column<string>(type: "TEXT", nullable: true),
                    LastTestJson = table.Column<string>(type: "TEXT", nullable: true),
                    LastDiscoveryJson = table.Column<string>(type: "TEXT", nullable: true),
                    CreatedAt = table.Column<DateTimeOffset>(type: "TEXT", nullable: false),
                    UpdatedAt = table.Column<DateTimeOffset>(type: "TEXT", nullable: false),
                    Version = table.Column<Guid>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_Targets", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_AuditEvents_Action",
                table: "AuditEvents",
                column: "Action");

            migrationBuilder.CreateIndex(
                name: "IX_AuditEvents_At",
                table: "AuditEvents",
                column: "At");

            migrationBuilder.CreateIndex(
                name: "IX_AuditEvents_TargetId",
                table: "AuditEvents",
                column: "TargetId");

            migrationBuilder.CreateIndex(
                name: "IX_Targets_Name",
                table: "Targets",
                column: "Name",
                unique: true);

            // The audit history is append-only: the database itself refuses to change or remove events.
            migrationBuilder.Sql("""
                CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON "AuditEvents"
                BEGIN SELECT RAISE(ABORT, 'AuditEvents is append-only: UPDATE is not allowed'); END;
                """);
            migrationBuilder.Sql("""
                CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON "AuditEvents"
                BEGIN SELECT RAISE(ABORT, 'AuditEvents is append-only: DELETE is not allowed'); END;
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP TRIGGER IF EXISTS audit_events_no_update;");
            migrationBuilder.Sql("DROP TRIGGER IF EXISTS audit_events_no_delete;");

            migrationBuilder.DropTable(
                name: "AuditEvents");

            migrationBuilder.DropTable(
                name: "Targets");
        }
    }
}
