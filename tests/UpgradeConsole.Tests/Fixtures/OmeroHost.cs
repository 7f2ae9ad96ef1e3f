using System.Globalization;
using System.Text;
using Npgsql;
using UpgradeConsole.Core.Omero;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// An OMERO.server 5.3.5 installation on the test sshd host, made the way a facility has one: its
/// own database on the real PostgreSQL in OMERO5.3__0's shape (owned by its own role), a venv with the
/// omero-py stand-in installed by real pip, the 5.3.5 release unpacked with <c>OMERO.server</c>
/// symlinked to it, config.xml written with <c>omero config set</c>, a custom script under lib/scripts,
/// a BioFormatsCache, the 5.6.3 release zip beside it, and the server started. See OmeroDouble/README.md.
/// </summary>
public sealed class OmeroHost : IAsyncDisposable
{
    public const string OldVersion = "5.3.5";
    public const string NewVersion = "5.6.3";
    public const string DbPassword = "omero-db-Secret'7 $x";

    private readonly IRemoteShell _shell;

    private OmeroHost(IRemoteShell shell, string directory, string databaseConnection, string absoluteDirectory)
    {
        _shell = shell;
        Directory = directory;
        DatabaseConnection = databaseConnection;
        AbsoluteDirectory = absoluteDirectory;
    }

    /// <summary>The working directory, <c>~/omero-…</c>.</summary>
    public string Directory { get; }

    public string AbsoluteDirectory { get; }

    public string ServerDirectory => AbsoluteDirectory + "/server/OMERO.server";

    public string Venv => AbsoluteDirectory + "/venv";

    public string NewReleaseZip => $"{AbsoluteDirectory}/releases/OMERO.server-{NewVersion}-ice36.zip";

    /// <summary>The OMERO database role's connection to its database.</summary>
    public string DatabaseConnection { get; }

    public OmeroHostSettings Settings => new(ServerDirectory, Venv, AbsoluteDirectory + "/backups", ["--no-index", "--find-links", AbsoluteDirectory + "/wheels"]);

    public static async Task<OmeroHost> CreateAsync(IRemoteShell shell, PostgresServer postgres, string? encoding = null)
    {
        var id = Guid.NewGuid().ToString("N")[..10];
        var database = "omero_" + id;
        var role = "omero_" + id;
        await using (var admin = new NpgsqlConnection(postgres.AdminConnectionString))
        {
            await admin.OpenAsync();
            var create = encoding is null
                ? $"CREATE DATABASE {database}"
                : $"CREATE DATABASE {database} ENCODING '{encoding}' TEMPLATE template0";
            foreach (var sql in new[] { $"CREATE ROLE {role} LOGIN PASSWORD '{DbPassword.Replace("'", "''", StringComparison.Ordinal)}'", create, $"ALTER DATABASE {database} OWNER TO {role}" })
            {
                await using var cmd = new NpgsqlCommand(sql, admin);
                await cmd.ExecuteNonQueryAsync();
            }
        }

        var connection = new NpgsqlConnectionStringBuilder(postgres.Connection(database)) { Username = role, Password = DbPassword, Pooling = false }.ConnectionString;
        await using (var conn = new NpgsqlConnection(connection))
        {
            await conn.OpenAsync();
            // PostgreSQL 15+ gives the public schema to the database owner; the OMERO role creates its tables there.
            await using var cmd = new NpgsqlCommand(await File.ReadAllTextAsync(Path.Combine(DoubleDirectory, "sql", "omero-5.3-database.sql")), conn);
            await cmd.ExecuteNonQueryAsync();
        }

        var dir = $"~/omero-{id}";
        var script = new StringBuilder("set -eu\n");
        script.Append("d=").Append(ShellWords.QuotePath(dir)).Append('\n');
        foreach (var file in System.IO.Directory.EnumerateFiles(DoubleDirectory, "*", SearchOption.AllDirectories)
                     .Where(f => f.EndsWith(".py", StringComparison.Ordinal) || f.EndsWith(".sql", StringComparison.Ordinal) || f.EndsWith(".in", StringComparison.Ordinal)))
        {
            var relative = Path.GetRelativePath(DoubleDirectory, file);
            script.Append("mkdir -p \"$d/double/").Append(Path.GetDirectoryName(relative)).Append("\"\n");
            script.Append("printf '%s' '").Append(Convert.ToBase64String(await File.ReadAllBytesAsync(file)))
                .Append("' | base64 -d > \"$d/double/").Append(relative).Append("\"\n");
        }

        script.Append(CultureInfo.InvariantCulture, $$"""
            py=/usr/bin/python3
            $py "$d/double/build_wheel.py" omero-py 5.6.0 "$d/wheels" > /dev/null
            $py "$d/double/build_wheel.py" omero-py 5.19.4 "$d/wheels" > /dev/null
            $py "$d/double/build_wheel.py" omero-certificates 0.3.2 "$d/wheels" > /dev/null
            $py -m venv "$d/venv"
            "$d/venv/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$d/wheels" 'omero-py==5.6.0'
            $py "$d/double/build_release.py" {{OldVersion}} OMERO5.3__0 "$d/releases" > /dev/null
            $py "$d/double/build_release.py" {{NewVersion}} OMERO5.4__0 "$d/releases" > /dev/null
            mkdir -p "$d/server" "$d/data/BioFormatsCache/ada" "$d/backups"
            unzip -q -d "$d/server" "$d/releases/OMERO.server-{{OldVersion}}-ice36.zip"
            ln -s OMERO.server-{{OldVersion}}-ice36 "$d/server/OMERO.server"
            mkdir -p "$d/server/OMERO.server/lib/scripts/facility"
            echo '# the facility own script' > "$d/server/OMERO.server/lib/scripts/facility/Export_To_Archive.py"
            echo '# edited in place by the facility' >> "$d/server/OMERO.server/lib/scripts/omero/util_scripts/Combine_Images.py"
            head -c 4096 /dev/zero > "$d/data/BioFormatsCache/ada/.cells.tif.bfmemo"
            export OMERODIR="$d/server/OMERO.server"
            o="$d/venv/bin/omero"
            "$o" config set omero.db.host 127.0.0.1
            "$o" config set omero.db.port {{postgres.Port}}
            "$o" config set omero.db.name {{database}}
            "$o" config set omero.db.user {{role}}
            "$o" config set omero.db.pass {{ShellWords.Quote(DbPassword)}}
            "$o" config set omero.data.dir "$d/data"
            "$o" config set omero.glacier2.IceSSL.Protocols TLS1_0,TLS1_1,TLS1_2
            "$o" config set omero.glacier2.IceSSL.ProtocolVersionMax TLS1_2
            "$o" admin start > /dev/null
            cd "$d" && pwd
            """);
        var result = await shell.RunAsync(script.ToString(), CancellationToken.None, TimeSpan.FromMinutes(3));
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"Setting up the OMERO host double failed ({result.ExitCode}):\n{result.Output}\n{result.StandardError}");
        }

        return new OmeroHost(shell, dir, connection, result.Output.Trim().Split('\n')[^1]);
    }

    public static string DoubleDirectory => Path.Combine(AppContext.BaseDirectory, "OmeroDouble");

    /// <summary>Runs a command on the host with OMERODIR and the venv's omero on PATH; returns its exit code and combined output.</summary>
    public async Task<(int Exit, string Output)> RunAsync(string command)
    {
        var result = await _shell.RunAsync(
            $"export OMERODIR={ShellWords.Quote(ServerDirectory)}; export PATH={ShellWords.Quote(Venv + "/bin")}:\"$PATH\"; cd {ShellWords.Quote(AbsoluteDirectory)}; {{ {command}\n}} 2>&1; echo \"exit=$?\"",
            CancellationToken.None, TimeSpan.FromMinutes(2));
        var output = result.Output.TrimEnd();
        var at = output.LastIndexOf("exit=", StringComparison.Ordinal);
        return (int.Parse(output[(at + 5)..], CultureInfo.InvariantCulture), output[..at]);
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var conn = new NpgsqlConnection(DatabaseConnection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var conn = new NpgsqlConnection(DatabaseConnection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>The dbpatch version, as the upgrade scripts read it.</summary>
    public Task<string> DbVersionAsync() => ScalarAsync<string>("SELECT currentversion || '__' || currentpatch FROM dbpatch ORDER BY id DESC LIMIT 1");

    /// <summary>Row counts of every table of the public schema, for comparing before and after.</summary>
    public async Task<SortedDictionary<string, long>> RowCountsAsync()
    {
        var counts = new SortedDictionary<string, long>(StringComparer.Ordinal);
        await using var conn = new NpgsqlConnection(DatabaseConnection);
        await conn.OpenAsync();
        var tables = new List<string>();
        await using (var cmd = new NpgsqlCommand("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'", conn))
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        foreach (var table in tables)
        {
            await using var cmd = new NpgsqlCommand($"SELECT count(*) FROM \"{table}\"", conn);
            counts[table] = (long)(await cmd.ExecuteScalarAsync())!;
        }

        return counts;
    }

    public async ValueTask DisposeAsync()
    {
        // Every server this host started, whichever tree it ran from (the symlink may have moved since).
        await _shell.RunAsync($"d={ShellWords.QuotePath(Directory)}; for p in \"$d\"/server/*/var/master/master.pid; do [ -f \"$p\" ] && kill \"$(cat \"$p\")\" 2>/dev/null; done; rm -rf \"$d\"", CancellationToken.None);
    }
}
