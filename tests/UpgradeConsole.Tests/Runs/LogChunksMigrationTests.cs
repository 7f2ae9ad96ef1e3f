using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// The migration from one row per log line to chunks keeps every line, on both providers, both ways:
/// chunks written by the writer go back to lines (down), lines of an older dashboard become chunks (up).
/// </summary>
public sealed class LogChunksMigrationTests(PostgresServer postgres)
{
    [Fact]
    public async Task OnSqlite() => await RoundTripAsync(new UpgradeConsoleApplicationFactory());

    [Fact]
    public async Task OnPostgreSql() =>
        await RoundTripAsync(new UpgradeConsoleApplicationFactory(DatabaseProvider.PostgreSQL, await postgres.CreateDatabaseAsync()));

    private static async Task RoundTripAsync(UpgradeConsoleApplicationFactory app)
    {
        await using (app)
        {
            var ct = TestContext.Current.CancellationToken;
            await app.CreateFirstAdminAsync();
            var (runId, phases) = await RunSeed.AddRunningRunAsync(app.Services, null, ("backup", "Backup", PhaseState.Succeeded), ("pip", "Install", PhaseState.Running));
            var writer = new RunLogWriter(app.Services.GetRequiredService<IServiceScopeFactory>(), runId, [], TimeProvider.System);
            await writer.WriteAsync(phases[0], "dump started", 10);
            await writer.WriteAsync(phases[0], "dump done", 20);
            await writer.WriteAsync(phases[1], "Collecting fractal-server==2.17.0", 30);
            await writer.WriteAsync(phases[1], "", 31);
            await writer.WriteAsync(phases[1], "ERROR: could not install", 50);
            await writer.FlushAsync(ct);

            await using var scope = app.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var migrations = db.Database.GetMigrations().ToList();
            var chunksMigration = migrations.FindIndex(m => m.EndsWith("_RunLogChunks", StringComparison.Ordinal));
            Assert.True(chunksMigration > 0, string.Join(", ", migrations));
            var migrator = db.GetService<IMigrator>();

            // Down (through any later migration): one row per line again, each line's remote offset where the chunk had it.
            await migrator.MigrateAsync(migrations[chunksMigration - 1], ct);
            await db.Database.OpenConnectionAsync(ct);
            var connection = db.Database.GetDbConnection();
            var lines = await QueryAsync(connection, $"""SELECT "Sequence", "PhaseIndex", "RemoteOffset", "Text" FROM "RunLogLines" WHERE "RunId" = {runId} ORDER BY "Sequence" """);
            Assert.Equal(
                ["1|0||dump started", "2|0|20|dump done", "3|1||Collecting fractal-server==2.17.0", "4|1||", "5|1|50|ERROR: could not install"],
                lines);

            // Up: what an older dashboard stored becomes chunks of one line (a stray line break becomes a space).
            await ExecuteAsync(connection, $"""
                INSERT INTO "RunLogLines" ("RunId", "Sequence", "PhaseIndex", "RemoteOffset", "At", "Text")
                VALUES ({runId}, 6, 1, 60, '2026-11-22 10:00:00+00:00', 'Traceback (most recent call last):' || {(app.Provider == DatabaseProvider.PostgreSQL ? "chr(10)" : "char(10)")} || 'boom')
                """);
            await migrator.MigrateAsync(null, ct);
            var chunks = await db.RunLogChunks.AsNoTracking().Where(c => c.RunId == runId).OrderBy(c => c.FirstSequence).ToListAsync(ct);
            Assert.All(chunks, c => Assert.Equal(c.FirstSequence, c.LastSequence));
            Assert.Equal(
                ["dump started", "dump done", "Collecting fractal-server==2.17.0", "", "ERROR: could not install", "Traceback (most recent call last): boom"],
                chunks.Select(c => c.Text));
            Assert.Equal([null, 20L, null, null, 50L, 60L], chunks.Select(c => c.RemoteOffset));
            Assert.Equal([null, null, null, null, 5L, 6L], chunks.Select(c => c.FirstErrorSequence));
            Assert.Equal(6, await RunLogHub.LastSequenceAsync(db, runId, ct));
        }
    }

    private static async Task<List<string>> QueryAsync(DbConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            rows.Add(string.Join('|', Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? "" : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture))));
        }

        return rows;
    }

    private static async Task ExecuteAsync(DbConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}
