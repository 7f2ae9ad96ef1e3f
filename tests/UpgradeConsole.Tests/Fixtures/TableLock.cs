using Npgsql;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A PostgreSQL table lock held by a transaction of the test's own until released (or disposed): the code under test
/// waits on it where the test wants it caught in the act.
/// </summary>
public sealed class TableLock : IAsyncDisposable
{
    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlTransaction _transaction;
    private bool _released;

    private TableLock(NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        _connection = connection;
        _transaction = transaction;
    }

    /// <param name="connectionString">The database holding the table.</param>
    /// <param name="table">A table name (test text, not quoted).</param>
    /// <param name="mode">A lock mode, e.g. <c>SHARE</c> or <c>ACCESS EXCLUSIVE</c>.</param>
    public static async Task<TableLock> HoldAsync(string connectionString, string table, string mode)
    {
        var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var transaction = await connection.BeginTransactionAsync();
        await using (var command = new NpgsqlCommand($"LOCK TABLE {table} IN {mode} MODE", connection, transaction))
        {
            await command.ExecuteNonQueryAsync();
        }

        return new TableLock(connection, transaction);
    }

    public async Task ReleaseAsync()
    {
        if (!_released)
        {
            _released = true;
            await _transaction.RollbackAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _transaction.DisposeAsync();
        await _connection.DisposeAsync();
    }
}
