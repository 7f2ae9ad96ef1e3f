using Npgsql;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>A production database as a rehearsal must leave it: a checksum of every table of its public schema.</summary>
public static class TableChecksums
{
    /// <summary>md5 of every table of the public schema, rows in a fixed order, as one string.</summary>
    public static async Task<string> EveryTableAsync(string connection)
    {
        await using var conn = new NpgsqlConnection(connection);
        await conn.OpenAsync();
        var tables = new List<string>();
        await using (var list = new NpgsqlCommand("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename", conn))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        var sums = new List<string>();
        foreach (var table in tables)
        {
            await using var cmd = new NpgsqlCommand($"SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-') FROM public.\"{table}\" t", conn);
            sums.Add($"{table}={await cmd.ExecuteScalarAsync()}");
        }

        Assert.NotEmpty(sums);
        return string.Join('\n', sums);
    }
}
