using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;
using UpgradeConsole.Core.Omero;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Omero;

/// <summary>
/// The OMERO host double checked against OMERO's real schema: omero-schema-facts.json holds what
/// OMERO's public SQL says (tables, columns, dbpatch rows, printed lines and refusals, each with the
/// file it was read from); these tests compare the double's live PostgreSQL database and its scripts,
/// run by psql on the host, with it. No network, no ../shared.
/// </summary>
public sealed class OmeroSchemaFactsTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private static readonly JsonElement Facts = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Omero", "omero-schema-facts.json"))).RootElement;

    private RemoteSession _remote = default!;
    private OmeroHost _host = default!;

    public async ValueTask InitializeAsync()
    {
        _remote = new RemoteSession(ssh);
        _host = await OmeroHost.CreateAsync(_remote.Shell, postgres);
    }

    public async ValueTask DisposeAsync()
    {
        await _host.DisposeAsync();
        await _remote.DisposeAsync();
    }

    private static string Line(string name) => Facts.GetProperty("lines").GetProperty(name).GetString()!;

    /// <summary>A fact's message with its <c>%</c> placeholders, as a pattern for a psql ERROR line.</summary>
    private static Regex ErrorPattern(string name) => new("ERROR:  " + Regex.Escape(Line(name)).Replace("%", ".+", StringComparison.Ordinal));

    private async Task<(int Exit, string Output)> PsqlAsync(string member, string? database = null, string zip = "releases/OMERO.server-5.6.3-ice36.zip")
    {
        var release = Path.GetFileNameWithoutExtension(zip);
        return await _host.RunAsync(
            $"unzip -p {ShellWords.Quote(zip)} {ShellWords.Quote(release + "/sql/psql/OMERO5.4__0/" + member)} | (export PGHOST=$(omero config get omero.db.host) PGPORT=$(omero config get omero.db.port) PGDATABASE={(database is null ? "$(omero config get omero.db.name)" : ShellWords.Quote(database))} PGUSER=$(omero config get omero.db.user) PGPASSWORD=\"$(omero config get omero.db.pass)\"; psql -X -q -At -v ON_ERROR_STOP=1)");
    }

    private async Task<List<string[]>> ColumnsAsync(string table)
    {
        await using var conn = new NpgsqlConnection(_host.DatabaseConnection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = @t ORDER BY ordinal_position", conn);
        cmd.Parameters.AddWithValue("t", table);
        var columns = new List<string[]>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            columns.Add([reader.GetString(0), reader.GetString(1)]);
        }

        return columns;
    }

    [Fact]
    public async Task TheDoublesDatabase_HasOmerosTablesAndColumns_AtOmero53()
    {
        foreach (var table in Facts.GetProperty("tables").EnumerateObject())
        {
            var expected = table.Value.EnumerateArray().Select(c => $"{c[0].GetString()} {c[1].GetString()}").ToList();
            Assert.Equal(expected, (await ColumnsAsync(table.Name)).Select(c => $"{c[0]} {c[1]}").ToList());
        }

        var before = Facts.GetProperty("before");
        Assert.Equal(before.GetProperty("dbpatchLast").GetProperty("currentversion").GetString(), await _host.ScalarAsync<string>("SELECT currentversion FROM dbpatch ORDER BY id DESC LIMIT 1"));
        Assert.Equal(before.GetProperty("dbpatchLast").GetProperty("currentpatch").GetInt32(), await _host.ScalarAsync<int>("SELECT currentpatch FROM dbpatch ORDER BY id DESC LIMIT 1"));
        foreach (var absent in before.GetProperty("absentTables").EnumerateArray())
        {
            Assert.Equal(0L, await _host.ScalarAsync<long>($"SELECT count(*) FROM information_schema.tables WHERE table_name = '{absent.GetString()}'"));
        }
    }

    [Fact]
    public async Task TheDoublesScripts_PrintOmerosLines_AndLeaveOmeros54Changes()
    {
        // The Core recognises exactly the lines OMERO prints.
        Assert.Equal(OmeroReleases.ReadyLine + "OMERO5.4__0", Line("ready"));
        Assert.Equal(OmeroReleases.UpgradedLine + "OMERO5.4__0", Line("upgraded"));
        Assert.Equal(Facts.GetProperty("lines").GetProperty("postgresPrerequisite").GetInt32(), OmeroReleases.MinimumPostgresFor(new("OMERO5.4", 0)));

        var (ready, readyOutput) = await PsqlAsync("OMERO5.3__0-precheck.sql");
        Assert.Equal(0, ready);
        Assert.Equal(Line("ready"), readyOutput.Trim());

        var (upgraded, upgradedOutput) = await PsqlAsync("OMERO5.3__0.sql");
        Assert.Equal(0, upgraded);
        Assert.Equal(Line("upgraded"), upgradedOutput.Trim());

        var after = Facts.GetProperty("after");
        var last = after.GetProperty("dbpatchLast");
        await using (var conn = new NpgsqlConnection(_host.DatabaseConnection))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT currentversion, currentpatch, previousversion, previouspatch, message, finished IS NOT NULL FROM dbpatch ORDER BY id DESC LIMIT 1", conn);
            await using var r = await cmd.ExecuteReaderAsync();
            Assert.True(await r.ReadAsync());
            Assert.Equal(last.GetProperty("currentversion").GetString(), r.GetString(0));
            Assert.Equal(last.GetProperty("currentpatch").GetInt32(), r.GetInt32(1));
            Assert.Equal(last.GetProperty("previousversion").GetString(), r.GetString(2));
            Assert.Equal(last.GetProperty("previouspatch").GetInt32(), r.GetInt32(3));
            Assert.Equal(last.GetProperty("message").GetString(), r.GetString(4));
            Assert.True(r.GetBoolean(5));
        }

        Assert.Equal(after.GetProperty("adminprivileges").EnumerateArray().Select(e => e.GetString()).Order(StringComparer.Ordinal),
            (await _host.ScalarAsync<string[]>("SELECT array_agg(value ORDER BY value COLLATE \"C\") FROM adminprivilege")));
        Assert.Equal(after.GetProperty("adminprivilegePermissions").GetInt64(), await _host.ScalarAsync<long>("SELECT DISTINCT permissions FROM adminprivilege"));
        var roles = after.GetProperty("roles");
        foreach (var column in roles.EnumerateObject())
        {
            Assert.Equal(column.Value.GetInt64(), await _host.ScalarAsync<long>($"SELECT {column.Name} FROM _roles"));
        }

        foreach (var table in after.GetProperty("tables").EnumerateArray())
        {
            Assert.Equal(1L, await _host.ScalarAsync<long>($"SELECT count(*) FROM information_schema.tables WHERE table_name = '{table.GetString()}'"));
        }

        foreach (var table in after.GetProperty("unloggedTables").EnumerateArray())
        {
            Assert.Equal('u', await _host.ScalarAsync<char>($"SELECT relpersistence FROM pg_class WHERE relname = '{table.GetString()}'"));
        }

        foreach (var index in after.GetProperty("indexes").EnumerateArray())
        {
            Assert.Equal(1L, await _host.ScalarAsync<long>($"SELECT count(*) FROM pg_indexes WHERE indexname = '{index.GetString()}'"));
        }

        foreach (var trigger in after.GetProperty("triggers").EnumerateArray())
        {
            Assert.Equal(1L, await _host.ScalarAsync<long>($"SELECT count(*) FROM pg_trigger WHERE tgname = '{trigger.GetString()}'"));
        }

        // Both scripts now refuse, with OMERO's message, and change nothing.
        var (pre, preOutput) = await PsqlAsync("OMERO5.3__0-precheck.sql");
        Assert.Equal(3, pre);
        Assert.Matches(ErrorPattern("wrongVersion"), preOutput);
        var (again, againOutput) = await PsqlAsync("OMERO5.3__0.sql");
        Assert.Equal(3, again);
        Assert.Matches(ErrorPattern("wrongVersion"), againOutput);
        Assert.Equal(3L, await _host.ScalarAsync<long>("SELECT count(*) FROM dbpatch"));
    }

    [Fact]
    public async Task TheDoublesScripts_RefuseAsOmerosDo()
    {
        await _host.ExecuteAsync("INSERT INTO originalfile (id, permissions, name, path, repo, creation_id, group_id, owner_id, update_id) VALUES (5, -88, 'nuclei.tif', '/ada_2/2017-06/21/10-01-02.123//', 'a6f1f36a-6c0b-4dc6-9a63-5b1c7c3a1f10', 4, 3, 2, 4)");
        var (dup, dupOutput) = await PsqlAsync("OMERO5.3__0-precheck.sql");
        Assert.Equal(3, dup);
        Assert.Matches(ErrorPattern("duplicatePaths"), dupOutput);
        Assert.Contains("{3,5}", dupOutput, StringComparison.Ordinal);
        await _host.ExecuteAsync("DELETE FROM originalfile WHERE id = 5");

        Assert.Equal(0, (await _host.RunAsync("/usr/bin/python3 double/build_release.py 9.9.9 OMERO5.4__0 future --pg-prereq 990000 > /dev/null")).Exit);
        var (old, oldOutput) = await PsqlAsync("OMERO5.3__0-precheck.sql", zip: "future/OMERO.server-9.9.9-ice36.zip");
        Assert.Equal(3, old);
        Assert.Matches(ErrorPattern("oldPostgres"), oldOutput);

        // A LATIN1 database of the same shape, owned by the same role.
        var role = new NpgsqlConnectionStringBuilder(_host.DatabaseConnection).Username!;
        var latin1 = role + "_latin1";
        await using (var admin = new NpgsqlConnection(postgres.AdminConnectionString))
        {
            await admin.OpenAsync();
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE {latin1} ENCODING 'LATIN1' TEMPLATE template0 OWNER {role}", admin);
            await cmd.ExecuteNonQueryAsync();
        }

        await using (var conn = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(_host.DatabaseConnection) { Database = latin1 }.ConnectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand(await File.ReadAllTextAsync(Path.Combine(OmeroHost.DoubleDirectory, "sql", "omero-5.3-database.sql")), conn);
            await cmd.ExecuteNonQueryAsync();
        }

        var (encoding, encodingOutput) = await PsqlAsync("OMERO5.3__0.sql", database: latin1);
        Assert.Equal(3, encoding);
        Assert.Matches(ErrorPattern("encoding"), encodingOutput);
        Assert.Contains("must be UTF8, not LATIN1", encodingOutput, StringComparison.Ordinal);
    }
}
