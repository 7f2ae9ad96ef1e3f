using System.Globalization;
using System.Text;
using Npgsql;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A Backend.AI cluster for a test (see BackendAiDouble/README.md): one real sshd on 127.0.0.1 per host (own throwaway
/// host keys, one client key for all), the manager's database on the real PostgreSQL (alembic_version, agents,
/// kernels with planted sessions), and each host's component installed by real pip in a real venv, with its TOML
/// configuration and a status file its status command reads. The wheels and the venvs (one per component and version)
/// are built once per test process and shared read-only: a host's <c>venv</c> is a link to its component's.
/// </summary>
public sealed class BackendAiCluster : IAsyncDisposable
{
    public const string Version = "23.09.10";

    /// <summary>The version of the agents left behind (the version spread).</summary>
    public const string BehindVersion = "23.09.9";

    /// <summary>The head revision of the double's 23.09.10 manager (BackendAiDouble/revisions.py).</summary>
    public const string Revision = "3d4e5f607182";

    public const string DbPassword = "bai-db-Secret'9 $y";

    /// <summary>The head revision of each release's manager (BackendAiDouble/revisions.py, head_of).</summary>
    public static readonly IReadOnlyDictionary<string, string> Heads = new Dictionary<string, string>
    {
        ["23.09.9"] = "2c3d4e5f6071",
        ["23.09.10"] = Revision,
        ["24.03.0"] = "4e5f60718293",
        ["24.03.1"] = "5f60718293a4",
    };

    private static readonly string[] Releases = ["23.09.9", "23.09.10", "24.03.0", "24.03.1"];
    private static readonly SemaphoreSlim SharedGate = new(1, 1);
    private static Task<string>? _shared;

    private readonly List<SshServer> _servers;
    private readonly string _root;
    private readonly PostgresServer _postgres;

    private BackendAiCluster(List<Node> nodes, List<SshServer> servers, string root, string database, string role, string connection, PostgresServer postgres)
    {
        Nodes = nodes;
        _servers = servers;
        _root = root;
        Database = database;
        Role = role;
        DatabaseConnection = connection;
        _postgres = postgres;
    }

    /// <summary>One host: its roles, its sshd, the version installed there, the agent's id.</summary>
    public sealed record Node(string Roles, SshServer Ssh, string Version, string? AgentId)
    {
        public string Address => $"{Ssh.Host}:{Ssh.Port.ToString(CultureInfo.InvariantCulture)}";

        public string Line => $"{Roles} {Ssh.User}@{Address}";
    }

    public IReadOnlyList<Node> Nodes { get; }

    public string Database { get; }

    public string Role { get; }

    public string DatabaseConnection { get; }

    /// <summary>The one client key every host accepts.</summary>
    public string ClientKey => Nodes[0].Ssh.ClientKey;

    public string User => Nodes[0].Ssh.User;

    /// <summary>The host list an Admin pastes: <c>role user@host:port</c> a line.</summary>
    public string HostList => string.Join('\n', Nodes.Select(n => n.Line));

    /// <summary>The same, each line with the host key's fingerprint (pinned on paste).</summary>
    public async Task<string> HostListWithFingerprintsAsync()
    {
        var lines = new List<string>();
        foreach (var n in Nodes)
        {
            lines.Add($"{n.Line} {await n.Ssh.HostKeyFingerprintAsync()}");
        }

        return string.Join('\n', lines);
    }

    /// <summary>Where each host's component lives: per host directory, by port.</summary>
    public string PythonEnvTemplate => _root + "/h{port}/venv";

    public string ConfigPathTemplate => _root + "/h{port}/{config}";

    public string StatusCommandTemplate => $"if test -f {_root}/h{{port}}/running && ! test -f {_root}/h{{port}}/broken; then echo active; else echo inactive; exit 3; fi";

    /// <summary>The hosts' stop and start commands: the status file goes and comes back.</summary>
    public string StopCommandTemplate => $"rm -f {_root}/h{{port}}/running";

    /// <summary>The hosts' start command: fails on a broken host; a held host's service takes until <see cref="Release"/> to start.</summary>
    public string StartCommandTemplate => $"if test -f {_root}/h{{port}}/broken; then echo 'the service failed to start (see its journal)' >&2; exit 1; fi; while test -f {_root}/h{{port}}/held; do sleep 0.1; done; touch {_root}/h{{port}}/running";

    /// <summary>The stand-in wheels of every release (the targets' pip options point here: --no-index --find-links).</summary>
    public string Wheels { get; private init; } = "";

    /// <summary>The version of the backend.ai packages installed in <paramref name="node"/>'s venv now, per package.</summary>
    public async Task<IReadOnlyDictionary<string, string>> InstalledAsync(Node node)
    {
        var packages = node.Roles.Split(',').Select(r => "backend.ai-" + r).ToList();
        var result = await ProcessRunner.RunAsync(Path.Combine(_root, "h" + node.Ssh.Port.ToString(CultureInfo.InvariantCulture), "venv", "bin", "python"),
            ["-c", "import sys, importlib.metadata as m\nfor p in sys.argv[1:]: print(p, m.version(p))", .. packages]);
        return result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')).ToDictionary(p => p[0], p => p[1]);
    }

    /// <summary>Whether <paramref name="node"/>'s service runs now (its status file).</summary>
    public bool IsRunning(Node node) => File.Exists(Path.Combine(_root, "h" + node.Ssh.Port.ToString(CultureInfo.InvariantCulture), "running"));

    public Node Manager => Nodes[0];

    public IEnumerable<Node> Agents => Nodes.Where(n => n.AgentId is not null);

    /// <summary>A manager (with the storage proxy), a web server and <paramref name="agents"/> agents, the last <paramref name="behind"/> of them on <see cref="BehindVersion"/>.</summary>
    /// <remarks>
    /// With <paramref name="version"/> every host is on that release and the database at its head; with
    /// <paramref name="ownVenvs"/> each host gets a venv of its own (a test that upgrades hosts), else a link to the shared one.
    /// </remarks>
    public static async Task<BackendAiCluster> CreateAsync(PostgresServer postgres, int agents = 5, int behind = 1, string? version = null, bool ownVenvs = false)
    {
        var shared = await SharedAsync();
        var servers = Enumerable.Range(0, agents + 2).Select(_ => new SshServer()).ToList();
        await Task.WhenAll(servers.Select(s => s.InitializeAsync().AsTask()));
        var clientKey = (await File.ReadAllTextAsync(servers[0].ClientKeyPath + ".pub")).Trim();
        foreach (var s in servers.Skip(1))
        {
            await s.AuthorizeAsync(clientKey);
        }

        var nodes = new List<Node>
        {
            new("manager,storage-proxy", servers[0], version ?? Version, null),
            new("webserver", servers[1], version ?? Version, null),
        };
        for (var i = 0; i < agents; i++)
        {
            nodes.Add(new Node("agent", servers[i + 2], version ?? (i >= agents - behind ? BehindVersion : Version), $"i-agent{(i + 1).ToString("00", CultureInfo.InvariantCulture)}"));
        }

        var id = Guid.NewGuid().ToString("N")[..10];
        var database = "bai_" + id;
        var role = "bai_" + id;
        await using (var admin = new NpgsqlConnection(postgres.AdminConnectionString))
        {
            await admin.OpenAsync();
            foreach (var sql in new[] { $"CREATE ROLE {role} LOGIN PASSWORD '{DbPassword.Replace("'", "''", StringComparison.Ordinal)}'", $"CREATE DATABASE {database} OWNER {role}" })
            {
                await using var cmd = new NpgsqlCommand(sql, admin);
                await cmd.ExecuteNonQueryAsync();
            }
        }

        var connection = new NpgsqlConnectionStringBuilder(postgres.Connection(database)) { Username = role, Password = DbPassword, Pooling = false }.ConnectionString;
        await using (var conn = new NpgsqlConnection(connection))
        {
            await conn.OpenAsync();
            var schema = await File.ReadAllTextAsync(Path.Combine(DoubleDirectory, "sql", "manager-schema.sql"));
            var seed = new StringBuilder(schema).Append(CultureInfo.InvariantCulture, $"\nINSERT INTO alembic_version VALUES ('{(version is null ? Revision : Heads[version])}');\n");
            foreach (var agent in nodes.Where(n => n.AgentId is not null))
            {
                seed.Append(CultureInfo.InvariantCulture, $"INSERT INTO agents (id, addr, version) VALUES ('{agent.AgentId}', 'tcp://{agent.Ssh.Host}:{agent.Ssh.Port + 10000}', '{agent.Version}');\n");
            }

            await using var cmd = new NpgsqlCommand(seed.ToString(), conn);
            await cmd.ExecuteNonQueryAsync();
        }

        // The hosts' files: world-readable, for the sshd's test user.
        var root = Directory.CreateTempSubdirectory("uc-bai-").FullName;
        File.SetUnixFileMode(root, (UnixFileMode)0b111_101_101);
        ProcessRunner.CleanUpWhenTestProcessExits($"rm -rf {ProcessRunner.ShellQuote(root)}");
        foreach (var node in nodes)
        {
            var dir = Path.Combine(root, "h" + node.Ssh.Port.ToString(CultureInfo.InvariantCulture));
            Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
            var first = node.Roles.Split(',')[0];
            if (ownVenvs)
            {
                await InstallAsync(Path.Combine(dir, "venv"), Path.Combine(shared, "wheels"), first, node.Version);
            }
            else
            {
                File.CreateSymbolicLink(Path.Combine(dir, "venv"), Path.Combine(shared, $"venv-{first}-{node.Version}"));
            }
            await File.WriteAllTextAsync(Path.Combine(dir, "running"), "");
            if (node.Roles.Contains("manager", StringComparison.Ordinal))
            {
                await File.WriteAllTextAsync(Path.Combine(dir, "manager.toml"), $"""
                    [etcd]
                    namespace = "local"
                    addr = {"{"} host = "127.0.0.1", port = 2379 {"}"}

                    [db]
                    type = "postgresql"
                    addr = {"{"} host = "127.0.0.1", port = {postgres.Port.ToString(CultureInfo.InvariantCulture)} {"}"}
                    name = "{database}"
                    user = "{role}"
                    password = "{DbPassword}"

                    [manager]
                    num-proc = 2
                    """);
                // alembic.ini is read by ConfigParser with interpolation: a '%' of the URL-escaped password is written '%%' (as alembic's docs say).
                await File.WriteAllTextAsync(Path.Combine(dir, "alembic.ini"),
                    $"[alembic]\nscript_location = ai.backend.manager.models:alembic\nsqlalchemy.url = postgresql://{role}:{Uri.EscapeDataString(DbPassword).Replace("%", "%%", StringComparison.Ordinal)}@127.0.0.1:{postgres.Port.ToString(CultureInfo.InvariantCulture)}/{database}\n");
            }
            else if (node.AgentId is { } agentId)
            {
                await File.WriteAllTextAsync(Path.Combine(dir, "agent.toml"), $"""
                    [agent]
                    mode = "docker"
                    id = "{agentId}"
                    rpc-listen-addr = {"{"} host = "127.0.0.1", port = {(node.Ssh.Port + 10000).ToString(CultureInfo.InvariantCulture)} {"}"}
                    """);
            }
            else
            {
                await File.WriteAllTextAsync(Path.Combine(dir, "webserver.conf"), "[service]\nip = \"127.0.0.1\"\nport = 8080\n");
            }
        }

        if (ownVenvs && ProcessRunner.IsRoot)
        {
            // The hosts' service user upgrades its own venv and stops and starts its own service (its status file).
            await ProcessRunner.RunAsync("chown", ["-R", servers[0].User, .. nodes.Select(n => Path.Combine(root, "h" + n.Ssh.Port.ToString(CultureInfo.InvariantCulture)))]);
        }

        return new BackendAiCluster(nodes, servers, root, database, role, connection, postgres) { Wheels = Path.Combine(shared, "wheels") };
    }

    public static string DoubleDirectory => Path.Combine(AppContext.BaseDirectory, "BackendAiDouble");

    /// <summary>
    /// Plants compute sessions in the manager's database: s1 on agent01 with a second kernel on agent02 (a cluster session),
    /// s2 on agent01, s3 PREPARING on agent03; terminated, cancelled and pending ones that occupy nothing. Returns the
    /// sessions per agent the dashboard must count.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, int>> PlantSessionsAsync()
    {
        await ExecuteAsync("""
            INSERT INTO kernels (session_id, session_name, cluster_role, cluster_idx, agent, status) VALUES
              ('00000000-0000-0000-0000-0000000000a1', 's1', 'main', 0, 'i-agent01', 'RUNNING'),
              ('00000000-0000-0000-0000-0000000000a1', 's1', 'sub', 1, 'i-agent02', 'RUNNING'),
              ('00000000-0000-0000-0000-0000000000a2', 's2', 'main', 0, 'i-agent01', 'RUNNING'),
              ('00000000-0000-0000-0000-0000000000a3', 's3', 'main', 0, 'i-agent03', 'PREPARING'),
              ('00000000-0000-0000-0000-0000000000a4', 's4', 'main', 0, 'i-agent04', 'TERMINATED'),
              ('00000000-0000-0000-0000-0000000000a5', 's5', 'main', 0, 'i-agent04', 'CANCELLED'),
              ('00000000-0000-0000-0000-0000000000a6', 's6', 'main', 0, NULL, 'PENDING');
            """);
        return new Dictionary<string, int> { ["i-agent01"] = 2, ["i-agent02"] = 1, ["i-agent03"] = 1 };
    }

    /// <summary>What an admin does before an upgrade: every session terminated.</summary>
    public Task TerminateSessionsAsync() =>
        ExecuteAsync("UPDATE kernels SET status = 'TERMINATED', terminated_at = now() WHERE status NOT IN ('TERMINATED', 'CANCELLED')");

    /// <summary>Stops a host's service (its status command then says inactive).</summary>
    /// <summary>The host's service fails to start and reports unhealthy until <see cref="Mend"/>.</summary>
    public void Break(Node node) => File.WriteAllText(Path.Combine(_root, "h" + node.Ssh.Port.ToString(CultureInfo.InvariantCulture), "broken"), "");

    public void Mend(Node node) => File.Delete(Path.Combine(_root, "h" + node.Ssh.Port.ToString(CultureInfo.InvariantCulture), "broken"));

    /// <summary>The host's service is slow to start: its start command waits until <see cref="Release"/>.</summary>
    public void Hold(Node node) => File.WriteAllText(Path.Combine(_root, "h" + node.Ssh.Port.ToString(CultureInfo.InvariantCulture), "held"), "");

    public void Release(Node node) => File.Delete(Path.Combine(_root, "h" + node.Ssh.Port.ToString(CultureInfo.InvariantCulture), "held"));

    public void StopService(Node node) => File.Delete(Path.Combine(_root, "h" + node.Ssh.Port.ToString(CultureInfo.InvariantCulture), "running"));

    public async Task ExecuteAsync(string sql)
    {
        await using var conn = new NpgsqlConnection(DatabaseConnection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>The stand-in wheels and one venv per component and version, built once per test process (real venv, real pip).</summary>
    private static async Task<string> SharedAsync()
    {
        await SharedGate.WaitAsync();
        try
        {
            return await (_shared ??= BuildSharedAsync());
        }
        finally
        {
            SharedGate.Release();
        }
    }

    private static async Task<string> BuildSharedAsync()
    {
        var dir = Directory.CreateTempSubdirectory("uc-bai-shared-").FullName;
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        ProcessRunner.CleanUpWhenTestProcessExits($"rm -rf {ProcessRunner.ShellQuote(dir)}");
        var wheels = Path.Combine(dir, "wheels");
        await ProcessRunner.RunAsync("/usr/bin/python3", [Path.Combine(DoubleDirectory, "build_wheel.py"), wheels, .. Releases]);
        (string Role, string Version)[] needed = [("manager", Version), ("webserver", Version), ("agent", Version), ("agent", BehindVersion)];
        await Task.WhenAll(needed.Select(n => InstallAsync(Path.Combine(dir, $"venv-{n.Role}-{n.Version}"), wheels, n.Role, n.Version)));
        return dir;
    }

    /// <summary>A venv made without pip, its role's package(s) installed by the system's real pip from the stand-in wheels.</summary>
    private static async Task InstallAsync(string venv, string wheels, string role, string version)
    {
        await ProcessRunner.RunAsync("/usr/bin/python3", ["-m", "venv", "--without-pip", venv], timeout: TimeSpan.FromMinutes(5));
        // The manager host also runs the storage proxy: both in its venv.
        string[] packages = role == "manager" ? [$"backend.ai-manager=={version}", $"backend.ai-storage-proxy=={version}"] : [$"backend.ai-{role}=={version}"];
        await ProcessRunner.RunAsync("/usr/bin/python3", ["-m", "pip", "--python", Path.Combine(venv, "bin", "python"), "install", "--quiet", "--disable-pip-version-check", "--no-index", "--find-links", wheels, .. packages],
            timeout: TimeSpan.FromMinutes(5));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var s in _servers)
        {
            await s.DisposeAsync();
        }

        try
        {
            await using var admin = new NpgsqlConnection(_postgres.AdminConnectionString);
            await admin.OpenAsync();
            await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Database} WITH (FORCE); DROP ROLE IF EXISTS {Role}", admin);
            await cmd.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException)
        {
            // The server was stopped by the test; its directory goes with it.
        }

        Directory.Delete(_root, recursive: true);
    }
}
