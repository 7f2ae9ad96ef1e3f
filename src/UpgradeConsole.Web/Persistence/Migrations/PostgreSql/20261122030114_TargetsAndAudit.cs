using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.PostgreSql
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
                    Id = table.Column<long>(type: "bigint", nullable: false),
                    At = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Actor = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    Action = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: false),
                    TargetId = table.Column<int>(type: "integer", nullable: true),
                    Subject = table.Column<string>(type: "character varying(500)", maxLength: 500, nullable: true),
                    Details = table.Column<string>(type: "text", nullable: false),
                    PreviousHash = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Hash = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_AuditEvents", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "Targets",
                columns: table => new
                {
                    Id = table.Column<int>(type: "integer", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    Name = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: false),
                    Product = table.Column<string>(type: "character varying(50)", maxLength: 50, nullable: false),
                    Host = table.Column<string>(type: "character varying(253)", maxLength: 253, nullable: false),
                    Port = table.Column<int>(type: "integer", nullable: false),
                    SshUser = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    AuthMethod = table.Column<string>(type: "character varying(20)", maxLength: 20, nullable: false),
                    ProtectedPrivateKey = table.Column<string>(type: "text", nullable: true),
                    PrivateKeyFingerprint = table.Column<string>(type: "text", nullable: true),
                    KeyFilePath = table.Column<string>(type: "text", nullable: true),
                    JumpHost = table.Column<string>(type: "text", nullable: true),
                    WorkingDirectory = table.Column<string>(type: "text", nullable: false),
                    EnvFileName = table.Column<string>(type: "text", nullable: false),
                    PythonPath = table.Column<string>(type: "text", nullable: true),
                    ServerUrl = table.Column<string>(type: "text", nullable: false),
                    ServiceUser = table.Column<string>(type: "text", nullable: true),
                    StopCommand = table.Column<string>(type: "text", nullable: false),
                    StartCommand = table.Column<string>(type: "text", nullable: false),
                    StatusCommand = table.Column<string>(type: "text", nullable: false),
                    RunsDirectory = table.Column<string>(type: "text", nullable: false),
                    HostKeyState = table.Column<string>(type: "character varying(20)", maxLength: 20, nullable: false),
                    PinnedKeyType = table.Column<string>(type: "text", nullable: true),
                    PinnedKey = table.Column<string>(type: "text", nullable: true),
                    PinnedFingerprint = table.Column<string>(type: "text", nullable: true),
                    PinnedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    PinnedBy = table.Column<string>(type: "text", nullable: true),
                    JumpPinnedKeyType = table.Column<string>(type: "text", nullable: true),
                    JumpPinnedKey = table.Column<string>(type: "text", nullable: true),
                    JumpPinnedFingerprint = table.Column<string>(type: "text", nullable: true),
                    MismatchSeenAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    MismatchDetail = table.Column<string>(type: "text", nullable: true),
                    LastTestJson = table.Column<string>(type: "text", nullable: true),
                    LastDiscoveryJson = table.Column<string>(type: "text", nullable: true),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    UpdatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Version = table.Column<Guid>(type: "uuid", nullable: false)
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
                CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'AuditEvents is append-only: % is not allowed', TG_OP;
                END $$;
                CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON "AuditEvents"
                    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("""
                DROP TRIGGER IF EXISTS audit_events_append_only ON "AuditEvents";
                DROP FUNCTION IF EXISTS audit_events_append_only();
                """);

            migrationBuilder.DropTable(
                name: "AuditEvents");

            migrationBuilder.DropTable(
                name: "Targets");
        }
    }
}
