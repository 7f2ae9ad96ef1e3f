using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using UpgradeConsole.Core.Audit;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Audit;

/// <summary>
/// Actions are recorded from the start as an append-only hash chain (its viewer comes with the
/// audit issue): the database refuses UPDATE and DELETE, and altering a row breaks the chain exactly there.
/// </summary>
public sealed class AuditTrailTests(PostgresServer postgres)
{
    public static TheoryData<DatabaseProvider> Providers => [DatabaseProvider.Sqlite, DatabaseProvider.PostgreSQL];

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task SignInsAndUserChanges_AreChained_AndTheDatabaseRefusesEdits(DatabaseProvider provider)
    {
        var connectionString = provider == DatabaseProvider.PostgreSQL ? await postgres.CreateDatabaseAsync() : null;
        await using var app = new UpgradeConsoleApplicationFactory(provider, connectionString);
        var admin = await app.CreateFirstAdminAsync();
        var client = app.CreateBrowserLikeClient();
        await client.PostFormAsync("/account/login", "login", new() { ["Input.Email"] = UpgradeConsoleApplicationFactory.AdminEmail, ["Input.Password"] = "wrong password!" });
        await app.CreateUserAsync(admin, "audited@example.org", "Viewer");

        await using var db = Open(provider, connectionString ?? Path.Combine(app.DataDirectory, "upgradeconsole.db"));
        var events = await ReadAsync(db);
        Assert.Equal(["account.setup", "account.login-failed", "user.create"], events.Select(e => e.Record.Action));
        Assert.Equal([1L, 2L, 3L], events.Select(e => e.Record.Sequence));
        Assert.DoesNotContain(events, e => e.Record.Details.Contains("wrong password", StringComparison.Ordinal));
        Assert.Null(AuditChain.FirstBroken(events));

        var update = await Assert.ThrowsAnyAsync<DbException>(() => ExecuteAsync(db, "UPDATE \"AuditEvents\" SET \"Actor\" = 'mallory' WHERE \"Id\" = 2"));
        Assert.Contains("append-only", update.Message, StringComparison.Ordinal);
        var delete = await Assert.ThrowsAnyAsync<DbException>(() => ExecuteAsync(db, "DELETE FROM \"AuditEvents\" WHERE \"Id\" = 3"));
        Assert.Contains("append-only", delete.Message, StringComparison.Ordinal);

        // Someone with the database's own powers goes around the guard: the chain names the altered event.
        await ExecuteAsync(db, provider == DatabaseProvider.PostgreSQL
            ? "ALTER TABLE \"AuditEvents\" DISABLE TRIGGER audit_events_append_only"
            : "DROP TRIGGER audit_events_no_update");
        await ExecuteAsync(db, "UPDATE \"AuditEvents\" SET \"Actor\" = 'mallory' WHERE \"Id\" = 2");
        Assert.Equal(2L, AuditChain.FirstBroken(await ReadAsync(db)));
    }

    private static DbConnection Open(DatabaseProvider provider, string target) =>
        provider == DatabaseProvider.PostgreSQL ? new NpgsqlConnection(target) : new SqliteConnection($"Data Source={target}");

    private static async Task ExecuteAsync(DbConnection db, string sql)
    {
        if (db.State != System.Data.ConnectionState.Open)
        {
            await db.OpenAsync();
        }

        await using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        await cmd.ExecuteNonQueryAsync();
    }

    private static async Task<List<(AuditRecord Record, string PreviousHash, string Hash)>> ReadAsync(DbConnection db)
    {
        if (db.State != System.Data.ConnectionState.Open)
        {
            await db.OpenAsync();
        }

        await using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT \"Id\", \"At\", \"Actor\", \"Action\", \"TargetId\", \"Subject\", \"Details\", \"PreviousHash\", \"Hash\" FROM \"AuditEvents\" ORDER BY \"Id\"";
        await using var reader = await cmd.ExecuteReaderAsync();
        var events = new List<(AuditRecord, string, string)>();
        while (await reader.ReadAsync())
        {
            var at = reader.GetValue(1) switch
            {
                DateTimeOffset dto => dto,
                DateTime dt => new DateTimeOffset(DateTime.SpecifyKind(dt, DateTimeKind.Utc)),
                string text => DateTimeOffset.Parse(text, System.Globalization.CultureInfo.InvariantCulture),
                var other => throw new InvalidOperationException($"Unexpected time value {other}"),
            };
            events.Add((new AuditRecord(reader.GetInt64(0), at, reader.GetString(2), reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetInt32(4), reader.IsDBNull(5) ? null : reader.GetString(5), reader.GetString(6)),
                reader.GetString(7), reader.GetString(8)));
        }

        return events;
    }
}
