using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace UpgradeConsole.Web.Persistence.Migrations.PostgreSql
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
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    RunId = table.Column<int>(type: "integer", nullable: false),
                    FirstSequence = table.Column<long>(type: "bigint", nullable: false),
                    LastSequence = table.Column<long>(type: "bigint", nullable: false),
                    PhaseIndex = table.Column<int>(type: "integer", nullable: false),
                    RemoteOffset = table.Column<long>(type: "bigint", nullable: true),
                    At = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    FirstErrorSequence = table.Column<long>(type: "bigint", nullable: true),
                    Text = table.Column<string>(type: "text", nullable: false)
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
                       replace("Text", E'\n', ' ')
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
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    At = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    PhaseIndex = table.Column<int>(type: "integer", nullable: false),
                    RemoteOffset = table.Column<long>(type: "bigint", nullable: true),
                    RunId = table.Column<int>(type: "integer", nullable: false),
                    Sequence = table.Column<long>(type: "bigint", nullable: false),
                    Text = table.Column<string>(type: "text", nullable: false)
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

            // Chunks back into lines.
            migrationBuilder.Sql("""
                INSERT INTO "RunLogLines" ("RunId", "Sequence", "PhaseIndex", "RemoteOffset", "At", "Text")
                SELECT c."RunId", c."FirstSequence" + l.n - 1, c."PhaseIndex",
                       CASE WHEN c."FirstSequence" + l.n - 1 = c."LastSequence" THEN c."RemoteOffset" END, c."At", l.line
                FROM "RunLogChunks" c, unnest(string_to_array(c."Text", E'\n')) WITH ORDINALITY AS l(line, n)
                """);

            migrationBuilder.DropTable(
                name: "RunLogChunks");
        }
    }
}
