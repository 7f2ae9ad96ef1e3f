using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class RunLogChunks : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "RunLogChunks",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    RunId = table.Column<int>(type: "INTEGER", nullable: false),
                    FirstSequence = table.Column<long>(type: "INTEGER", nullable: false),
                    LastSequence = table.Column<long>(type: "INTEGER", nullable: false),
                    PhaseIndex = table.Column<int>(type: "INTEGER", nullable: false),
                    RemoteOffset = table.Column<long>(type: "INTEGER", nullable: true),
                    At = table.Column<DateTimeOffset>(type: "TEXT", nullable: false),
                    FirstErrorSequence = table.Column<long>(type: "INTEGER", nullable: true),
                    Text = table.Column<string>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_RunLogChunks", x => x.Id);
                    table.ForeignKey(
                        name: "FK_RunLogChunks_Runs_RunId",
                        column: x => x.RunId,
                        principalTable: "Runs",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_RunLogChunks_RunId_FirstSequence",
                table: "RunLogChunks",
                columns: new[] { "RunId", "FirstSequence" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_RunLogChunks_RunId_LastSequence",
                table: "RunLogChunks",
                columns: new[] { "RunId", "LastSequence" },
                unique: true);

            // Each stored line becomes a chunk of one line (new logs are written in chunks of up to 5,000).
            migrationBuilder.Sql("""
                INSERT INTO "RunLogChunks" ("RunId", "FirstSequence", "LastSequence", "PhaseIndex", "RemoteOffset", "At", "FirstErrorSequence", "Text")
                SELECT "RunId", "Sequence", "Sequence", "PhaseIndex", "RemoteOffset", "At",
                       CASE WHEN lower("Text") LIKE '%error%' OR lower("Text") LIKE '%failed%' OR lower("Text") LIKE '%traceback%' OR lower("Text") LIKE '%fatal%' THEN "Sequence" END,
                       replace("Text", char(10), ' ')
                FROM "RunLogLines"
                """);

            migrationBuilder.DropTable(
                name: "RunLogLines");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "RunLogLines",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    At = table.Column<DateTimeOffset>(type: "TEXT", nullable: false),
                    PhaseIndex = table.Column<int>(type: "INTEGER", nullable: false),
                    RemoteOffset = table.Column<long>(type: "INTEGER", nullable: true),
                    RunId = table.Column<int>(type: "INTEGER", nullable: false),
                    Sequence = table.Column<long>(type: "INTEGER", nullable: false),
                    Text = table.Column<string>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_RunLogLines", x => x.Id);
                    table.ForeignKey(
                        name: "FK_RunLogLines_Runs_RunId",
                        column: x => x.RunId,
                        principalTable: "Runs",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_RunLogLines_RunId_Sequence",
                table: "RunLogLines",
                columns: new[] { "RunId", "Sequence" },
                unique: true);

            // Chunks back into lines (a recursive split; slow for very long logs, which a downgrade rarely meets).
            migrationBuilder.Sql("""
                WITH RECURSIVE split("RunId", "Sequence", "Last", "PhaseIndex", "RemoteOffset", "At", "Line", "Rest") AS (
                    SELECT "RunId", "FirstSequence" - 1, "LastSequence", "PhaseIndex", "RemoteOffset", "At", NULL, "Text" || char(10) FROM "RunLogChunks"
                    UNION ALL
                    SELECT "RunId", "Sequence" + 1, "Last", "PhaseIndex", "RemoteOffset", "At",
                           substr("Rest", 1, instr("Rest", char(10)) - 1), substr("Rest", instr("Rest", char(10)) + 1)
                    FROM split WHERE "Rest" <> ''
                )
                INSERT INTO "RunLogLines" ("RunId", "Sequence", "PhaseIndex", "RemoteOffset", "At", "Text")
                SELECT "RunId", "Sequence", "PhaseIndex", CASE WHEN "Sequence" = "Last" THEN "RemoteOffset" END, "At", "Line"
                FROM split WHERE "Line" IS NOT NULL
                """);

            migrationBuilder.DropTable(
                name: "RunLogChunks");
        }
    }
}
