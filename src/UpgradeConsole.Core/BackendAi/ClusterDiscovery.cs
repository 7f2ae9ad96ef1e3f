using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Core.BackendAi;

/// <summary>What discovery needs to know of one host: its roles and where its component lives.</summary>
public sealed record ClusterHostSettings(IReadOnlyList<string> Roles, string PythonEnv, string ConfigPath, string StatusCommand);

/// <summary>The manager's database as its configuration names it (the password read only to connect, never stored or shown).</summary>
public sealed record ManagerDatabase(string Host, int Port, string Name, string User)
{
    [JsonIgnore]
    public string? Password { get; init; }
}

/// <summary>What one host reported: the installed version of each of its components, the service state, the agent id.</summary>
public sealed record HostFindings
{
    /// <summary>Package → installed version (null: not installed in the host's Python environment).</summary>
    public IReadOnlyDictionary<string, string?> Packages { get; init; } = new Dictionary<string, string?>();

    public string? Python { get; init; }

    /// <summary>The status command's exit code (0: running).</summary>
    public int? ServiceExit { get; init; }

    public string? ServiceOutput { get; init; }

    /// <summary>The agent's id as the manager knows it (<c>[agent] id</c> of agent.toml, else <c>i-&lt;hostname&gt;</c>).</summary>
    public string? AgentId { get; init; }

    /// <summary>The manager's database, for a manager host whose configuration could be read.</summary>
    public ManagerDatabase? Database { get; init; }

    /// <summary>What could not be read, in words.</summary>
    public IReadOnlyList<string> Problems { get; init; } = [];

    public bool ServiceRunning => ServiceExit == 0;

    /// <summary>The one version of the host's components, the lowest when they differ (a host with two components at two versions is itself a spread).</summary>
    public string? Version => Packages.Values.Where(v => v is not null).Select(v => Normalize(v!)).OrderBy(v => v, VersionOrder).FirstOrDefault();

    private static readonly Comparer<string> VersionOrder = Comparer<string>.Create((a, b) =>
        BackendAiVersion.TryParse(a, out var x, out _) && BackendAiVersion.TryParse(b, out var y, out _) ? x.CompareTo(y) : string.CompareOrdinal(a, b));

    /// <summary>pip prints <c>23.9.10</c>; Backend.AI writes <c>23.09.10</c>.</summary>
    public static string Normalize(string version) => BackendAiVersion.TryParse(version, out var v, out _) ? v.ToString() : version;
}

/// <summary>
/// Discovery on one Backend.AI host, in one SSH command: the host's Python (its component's environment) reads
/// each component's installed version from its package metadata (<c>importlib.metadata</c>, what <c>pip show</c>
/// reads), the agent id and the manager's database from the component's TOML configuration; then the service's
/// status command runs. Paths and package names reach the shell quoted; the status command is the Admin's own
/// command line, run as written (as a target's stop/start/status commands are).
/// </summary>
public static class ClusterDiscovery
{
    public const string Marker = "@@ucbai ";

    /// <summary>The Python of an environment: a venv directory (<c>…/venv</c> → <c>…/venv/bin/python</c>) or a Python path as it is.</summary>
    public static string PythonOf(string env)
    {
        var path = env.Trim().TrimEnd('/');
        var slash = path.LastIndexOf('/');
        return slash >= 0 && path[(slash + 1)..].StartsWith("python", StringComparison.Ordinal) ? path : path + "/bin/python";
    }

    // Reads what the manager and agents themselves read: the [db] table of manager.toml (addr as "host:port" or
    // {host, port}; name; user; password) and [agent] id of agent.toml (else "i-" + the host name, the agent's
    // default id). Facts from lablup/backend.ai: manager/cli/__main__.py (dbshell builds its URL from db.user,
    // db.password, db.addr, db.name) and the sample configs' [db] and [agent] tables.
    private const string Reader = """
        import json, socket, sys
        out = {"python": sys.version.split()[0], "packages": {}, "problems": []}
        try:
            import importlib.metadata as md
        except Exception as e:
            out["problems"].append("importlib.metadata unavailable: %s" % e); md = None
        roles, config = sys.argv[1].split(","), sys.argv[2]
        for role in roles:
            name = "backend.ai-" + role
            try:
                out["packages"][name] = md.version(name) if md else None
            except Exception:
                out["packages"][name] = None
        cfg = None
        try:
            import tomllib
            with open(config, "rb") as f:
                cfg = tomllib.load(f)
        except FileNotFoundError:
            out["problems"].append("configuration %s not found" % config)
        except Exception as e:
            out["problems"].append("configuration %s unreadable: %s" % (config, e))
        if "agent" in roles:
            aid = ((cfg or {}).get("agent") or {}).get("id")
            out["agent_id"] = aid or "i-" + socket.gethostname()
        if "manager" in roles and cfg is not None:
            db = cfg.get("db") or {}
            addr = db.get("addr") or {}
            if isinstance(addr, str):
                h, _, p = addr.rpartition(":")
                addr = {"host": h, "port": int(p or 5432)}
            out["db"] = {"host": addr.get("host", "127.0.0.1"), "port": int(addr.get("port", 5432)), "name": db.get("name", "backend"), "user": db.get("user", "postgres"), "password": db.get("password")}
        print("@@ucbai " + json.dumps(out))
        """;

    /// <summary>The one command discovery runs on a host.</summary>
    public static string Script(ClusterHostSettings host)
    {
        var py = ShellWords.QuotePath(PythonOf(host.PythonEnv));
        var b = new StringBuilder();
        b.Append("py=").Append(py).Append('\n');
        b.Append("if [ -x \"$py\" ]; then \"$py\" -c ").Append(ShellWords.Quote(Reader)).Append(' ')
            .Append(ShellWords.Quote(string.Join(',', host.Roles))).Append(' ').Append(ShellWords.QuotePath(host.ConfigPath))
            .Append(" 2>&1; else echo \"").Append(Marker).Append("{\\\"problems\\\": [\\\"no Python at $py\\\"], \\\"packages\\\": {}}\"; fi\n");
        b.Append("svc=$( { ").Append(host.StatusCommand).Append("\n} 2>&1 ); e=$?\n");
        b.Append("printf '").Append(Marker).Append("service %s %s\\n' \"$e\" \"$(printf '%s' \"$svc\" | head -c 300 | tr '\\n' ' ')\"\n");
        return b.ToString();
    }

    /// <summary>Reads what <see cref="Script"/> printed.</summary>
    public static HostFindings Parse(string output, IReadOnlyList<string> roles)
    {
        var problems = new List<string>();
        Dictionary<string, string?> packages = roles.ToDictionary(ClusterRoles.Package, _ => (string?)null);
        string? python = null, agentId = null, serviceOutput = null;
        int? serviceExit = null;
        ManagerDatabase? database = null;
        var sawReader = false;
        foreach (var line in output.Split('\n'))
        {
            var at = line.IndexOf(Marker, StringComparison.Ordinal);
            if (at < 0)
            {
                continue;
            }

            var payload = line[(at + Marker.Length)..].TrimEnd('\r');
            if (payload.StartsWith("service ", StringComparison.Ordinal))
            {
                var rest = payload["service ".Length..];
                var space = rest.IndexOf(' ', StringComparison.Ordinal);
                serviceExit = int.TryParse(space < 0 ? rest : rest[..space], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var e) ? e : null;
                serviceOutput = space < 0 ? "" : rest[(space + 1)..].Trim();
                continue;
            }

            try
            {
                using var doc = JsonDocument.Parse(payload);
                var root = doc.RootElement;
                sawReader = true;
                python = root.TryGetProperty("python", out var p) ? p.GetString() : null;
                if (root.TryGetProperty("packages", out var pk))
                {
                    foreach (var pkg in pk.EnumerateObject())
                    {
                        packages[pkg.Name] = pkg.Value.ValueKind == JsonValueKind.String ? pkg.Value.GetString() : null;
                    }
                }

                if (root.TryGetProperty("problems", out var pr))
                {
                    problems.AddRange(pr.EnumerateArray().Select(x => x.GetString() ?? ""));
                }

                agentId = root.TryGetProperty("agent_id", out var a) ? a.GetString() : null;
                if (root.TryGetProperty("db", out var db))
                {
                    database = new ManagerDatabase(db.GetProperty("host").GetString() ?? "127.0.0.1", db.GetProperty("port").GetInt32(),
                        db.GetProperty("name").GetString() ?? "", db.GetProperty("user").GetString() ?? "")
                    {
                        Password = db.TryGetProperty("password", out var pw) && pw.ValueKind == JsonValueKind.String ? pw.GetString() : null,
                    };
                }
            }
            catch (JsonException)
            {
                problems.Add("the host's Python printed something unreadable");
            }
        }

        if (!sawReader)
        {
            problems.Add("the host's Python did not answer: " + Shorten(output.Trim()));
        }

        problems.AddRange(packages.Where(p => p.Value is null).Select(p => $"{p.Key} is not installed in this host's Python environment"));
        return new HostFindings
        {
            Packages = packages,
            Python = python,
            ServiceExit = serviceExit,
            ServiceOutput = serviceOutput,
            AgentId = agentId,
            Database = database,
            Problems = problems,
        };
    }

    private static string Shorten(string text) => text.Length <= 200 ? text : text[..197] + "…";
}

/// <summary>The versions found across a cluster: the guide's rule is one version everywhere.</summary>
public sealed record VersionSpread(IReadOnlyList<VersionCount> Versions, string? Majority)
{
    /// <summary>Every host that answered runs the same version.</summary>
    public bool Uniform => Versions.Count == 1;

    /// <summary>Whether a host's version differs from the cluster's (the majority's; unknown counts as differing).</summary>
    public bool Differs(string? version) => version is null || (Majority is not null && version != Majority);

    /// <summary>Counts each host's version (hosts not read count as unknown and are left out of the versions).</summary>
    public static VersionSpread Of(IEnumerable<string?> hostVersions)
    {
        var counts = hostVersions.Where(v => v is not null).GroupBy(v => v!, StringComparer.Ordinal)
            .Select(g => new VersionCount(g.Key, g.Count()))
            .OrderByDescending(c => c.Hosts).ThenByDescending(c => c.Version, Comparer<string>.Create((a, b) =>
                BackendAiVersion.TryParse(a, out var x, out _) && BackendAiVersion.TryParse(b, out var y, out _) ? x.CompareTo(y) : string.CompareOrdinal(a, b)))
            .ToList();
        return new VersionSpread(counts, counts.FirstOrDefault()?.Version);
    }

    public string Summary => Versions.Count switch
    {
        0 => "no version read",
        1 => $"one version everywhere: {Versions[0].Version}",
        _ => $"{Versions.Count.ToString(CultureInfo.InvariantCulture)} versions: " + string.Join(", ", Versions.Select(v => $"{v.Version} on {v.Hosts.ToString(CultureInfo.InvariantCulture)} host{(v.Hosts == 1 ? "" : "s")}")),
    };
}

public sealed record VersionCount(string Version, int Hosts);

/// <summary>
/// The compute sessions the manager's database says are on agents now. Facts from lablup/backend.ai,
/// <c>src/ai/backend/manager/models/kernel.py</c>: the <c>kernels</c> table has one row per container with
/// <c>session_id</c>, <c>agent</c> (the agent's id, <c>agents.id</c>) and <c>status</c>, the
/// <c>KernelStatus</c> name as text (PENDING, SCHEDULED, PREPARING, BUILDING, PULLING, RUNNING, RESTARTING,
/// RESIZING, SUSPENDED, TERMINATING, TERMINATED, ERROR, CANCELLED); <c>AGENT_RESOURCE_OCCUPYING_KERNEL_STATUSES</c>
/// is every status but TERMINATED, PENDING and CANCELLED. A session occupies an agent while one of its kernels
/// there is in such a status; a session with kernels on two agents counts on both.
/// </summary>
public static class Workloads
{
    public const string CheckId = "backendai.no-sessions";

    public static IReadOnlyList<string> IdleStatuses { get; } = ["TERMINATED", "PENDING", "CANCELLED"];

    public const string TotalSql =
        "SELECT count(DISTINCT session_id) FROM kernels WHERE agent IS NOT NULL AND status::text <> ALL(@idle)";

    public const string PerAgentSql =
        "SELECT agent, count(DISTINCT session_id) FROM kernels WHERE agent IS NOT NULL AND status::text <> ALL(@idle) GROUP BY agent ORDER BY agent";
}

/// <summary>Sessions on one agent.</summary>
public sealed record AgentSessions(string AgentId, int Sessions);

/// <summary>What discovery found on one host of the cluster (or why it could not look).</summary>
public sealed record HostReport(int HostId, string Address, IReadOnlyList<string> Roles, HostFindings? Findings, string? Error)
{
    public string? Version => Findings?.Version;

    /// <summary>Its version differs from the cluster's (or could not be read).</summary>
    public bool Differs { get; init; }

    /// <summary>Compute sessions the manager's database counts on this agent (agents only).</summary>
    public int? Sessions { get; init; }
}

/// <summary>Discovery across a cluster: every host, the version spread, the manager's database.</summary>
public sealed record ClusterFindings(IReadOnlyList<HostReport> Hosts, VersionSpread Spread)
{
    /// <summary>The manager's database's alembic revision (<c>alembic_version.version_num</c>).</summary>
    public string? AlembicRevision { get; init; }

    public ManagerDatabase? Database { get; init; }

    /// <summary>Sessions per agent id, as the manager's database counts them (agents the cluster lists or not).</summary>
    public IReadOnlyList<AgentSessions> Sessions { get; init; } = [];

    /// <summary>Why the manager's database was not read, or null.</summary>
    public string? DatabaseError { get; init; }

    /// <summary>Sessions occupying any agent (a session on two agents counts once).</summary>
    public int RunningSessions { get; init; }

    public bool AllAnswered => Hosts.All(h => h.Findings is not null && h.Error is null);
}
