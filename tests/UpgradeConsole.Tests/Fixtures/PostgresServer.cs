using System.Net.Sockets;
using Npgsql;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A real PostgreSQL server (Debian's), created for the test run: initdb in a temporary directory,
/// listening on a free port of 127.0.0.1 only, stopped and removed afterwards.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private const string SuperUser = "postgres";
    private readonly string _root = Directory.CreateTempSubdirectory("uc-pg-").FullName;
    private string _binDir = "";

    public int Port { get; private set; }

    public string Password { get; } = "pw-" + Guid.NewGuid().ToString("N");

    public int MajorVersion { get; private set; }

    private string DataDir => Path.Combine(_root, "data");

    public string SocketDir => Path.Combine(_root, "sock");

    public string AdminConnectionString => Connection("postgres");

    public async ValueTask InitializeAsync()
    {
        _binDir = FindBinDir();
        MajorVersion = int.Parse(Path.GetFileName(Path.GetDirectoryName(_binDir)!), System.Globalization.CultureInfo.InvariantCulture);
        Directory.CreateDirectory(SocketDir);
        // Others may reach the socket directory (as a Fractal host's service user reaches /var/run/postgresql).
        File.SetUnixFileMode(_root, (UnixFileMode)0b111_101_101);
        File.SetUnixFileMode(SocketDir, (UnixFileMode)0b111_101_101);
        var pwFile = Path.Combine(_root, "pw");
        await File.WriteAllTextAsync(pwFile, Password);
        if (ProcessRunner.IsRoot)
        {
            // initdb refuses to run as root: the cluster belongs to Debian's postgres user.
            await ProcessRunner.RunAsync("chown", ["-R", "postgres:postgres", _root]);
        }

        await AsServerUser("initdb", "-D", DataDir, "-U", SuperUser, "--auth=scram-sha-256", $"--pwfile={pwFile}", "-E", "UTF8", "--no-locale");
        File.Delete(pwFile);
        Port = ProcessRunner.FreePort();
        var asServerUser = ProcessRunner.IsRoot ? "runuser -u postgres -- " : "";
        ProcessRunner.CleanUpWhenTestProcessExits(
            $"{asServerUser}{ProcessRunner.ShellQuote(Path.Combine(_binDir, "pg_ctl"))} -D {ProcessRunner.ShellQuote(DataDir)} stop -m immediate; rm -rf {ProcessRunner.ShellQuote(_root)}");
        await StartAsync();
    }

    /// <summary>Starts (or restarts) the server on its port.</summary>
    public Task<ProcessRunner.Result> StartAsync() =>
        AsServerUser("pg_ctl", "-D", DataDir, "-l", Path.Combine(_root, "server.log"), "-w", "-t", "60", "-o",
            $"-p {Port} -c listen_addresses=127.0.0.1 -k {SocketDir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            "start");

    /// <summary>Stops the server at once, as a crash or a network cut would look to a client.</summary>
    public Task<ProcessRunner.Result> StopAsync() => AsServerUser("pg_ctl", "-D", DataDir, "-w", "stop", "-m", "immediate");

    public string Connection(string database) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = Port,
            Database = database,
            Username = SuperUser,
            Password = Password,
            Pooling = true,
            Timeout = 10,
        }.ConnectionString;

    /// <summary>Creates an empty database and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string? name = null)
    {
        name ??= "t_" + Guid.NewGuid().ToString("N")[..16];
        await using var conn = new NpgsqlConnection(AdminConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", conn);
        await cmd.ExecuteNonQueryAsync();
        return Connection(name);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        catch (InvalidOperationException)
        {
            // Already stopped by a test.
        }

        Directory.Delete(_root, recursive: true);
    }

    private static string FindBinDir()
    {
        var candidates = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin"))
                .Where(d => File.Exists(Path.Combine(d, "initdb")))
                .OrderByDescending(d => int.Parse(Path.GetFileName(Path.GetDirectoryName(d)!), System.Globalization.CultureInfo.InvariantCulture))
                .ToList()
            : [];
        return candidates.FirstOrDefault()
            ?? throw new InvalidOperationException("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: run ./scripts/test.sh, which installs them.");
    }

    private Task<ProcessRunner.Result> AsServerUser(string program, params string[] args)
    {
        var path = Path.Combine(_binDir, program);
        return ProcessRunner.IsRoot
            ? ProcessRunner.RunAsync("runuser", ["-u", "postgres", "--", path, .. args], timeout: TimeSpan.FromMinutes(2))
            : ProcessRunner.RunAsync(path, args, timeout: TimeSpan.FromMinutes(2));
    }

    /// <summary>True when something accepts connections on the server's port.</summary>
    public bool IsListening()
    {
        try
        {
            using var client = new TcpClient();
            client.Connect("127.0.0.1", Port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
