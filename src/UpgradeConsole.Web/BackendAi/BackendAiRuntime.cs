using System.Security.Claims;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using UpgradeConsole.Core.BackendAi;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.BackendAi;

/// <summary>A connection to the cluster's manager (the target's own address) for a phase.</summary>
public sealed class BackendAiSession(IRemoteShell shell, ClusterHost? manager = null) : IProductSession
{
    public IRemoteShell Shell => shell;

    /// <summary>The manager host the shell reaches (null for a cluster without one yet).</summary>
    public ClusterHost? Manager => manager;

    public IReadOnlyCollection<string> Secrets => [];

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>
/// Backend.AI's services: discovery on every host of the cluster (installed components, service state), the
/// manager's database (alembic revision, compute sessions per agent) through an SSH forward from the manager host
/// with the credentials of its own manager.toml, and the preflight whose workload check fails while sessions run.
/// </summary>
public sealed class BackendAiRuntime(AppDbContext db, ClusterService cluster, ClusterConnections connections, TargetConnections targetConnections, FleetPhaseStore fleet, AuditLog audit, TimeProvider clock)
    : IProductRuntime, IProductDiscovery, IClusterDiscovery
{
    /// <summary>At most this many hosts are looked at at once.</summary>
    public const int Concurrency = 50;

    private static readonly TimeSpan HostTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A phase's session is on the manager host, through its own pin (every host of a cluster is pinned on its own; the
    /// target's address is the manager's). A cluster without a manager host yet falls back to the target's connection.
    /// </summary>
    public async Task<IProductSession> OpenSessionAsync(Target target, CancellationToken ct)
    {
        var manager = (await cluster.HostsAsync(target.Id, ct)).FirstOrDefault(h => h.IsManager);
        return new BackendAiSession(manager is null ? await targetConnections.ShellAsync(target, ct) : connections.Shell(target, manager), manager);
    }

    /// <summary>Looks at every host, then at the manager's database.</summary>
    public async Task<ClusterFindings> DiscoverAsync(Target target, CancellationToken ct)
    {
        var hosts = await cluster.HostsAsync(target.Id, ct);
        using var gate = new SemaphoreSlim(Concurrency);
        var reports = await Task.WhenAll(hosts.Select(async host =>
        {
            await gate.WaitAsync(ct);
            try
            {
                var shell = connections.Shell(target, host);
                var result = await shell.RunAsync(ClusterDiscovery.Script(new ClusterHostSettings(host.RoleList, host.PythonEnv, host.ConfigPath, host.StatusCommand)), ct, HostTimeout);
                return (Host: host, Report: new HostReport(host.Id, host.Address, host.RoleList, ClusterDiscovery.Parse(result.Output, host.RoleList), null));
            }
            catch (Exception ex) when (ex is SshConnectionException or HostKeyNotPinnedException or RemoteCommandException or TimeoutException or InvalidOperationException)
            {
                return (Host: host, Report: new HostReport(host.Id, host.Address, host.RoleList, null, ex.Message));
            }
            finally
            {
                gate.Release();
            }
        }));

        var spread = VersionSpread.Of(reports.Select(r => r.Report.Version));
        var findings = new ClusterFindings([.. reports.Select(r => r.Report with { Differs = spread.Differs(r.Report.Version) })], spread);
        var manager = reports.FirstOrDefault(r => r.Report.Findings?.Database is not null);
        if (manager.Host is null)
        {
            return findings with { DatabaseError = hosts.Any(h => h.IsManager) ? "The manager's configuration could not be read (its [db] table)." : "No host of the cluster has the manager role." };
        }

        var database = manager.Report.Findings!.Database!;
        try
        {
            var (revision, total, sessions) = await ReadDatabaseAsync(connections.Shell(target, manager.Host), database, ct);
            var byAgent = sessions.ToDictionary(s => s.AgentId, s => s.Sessions, StringComparer.Ordinal);
            return findings with
            {
                Database = database,
                AlembicRevision = revision,
                Sessions = sessions,
                RunningSessions = total,
                Hosts = [.. findings.Hosts.Select(h => h.Findings?.AgentId is { } agent ? h with { Sessions = byAgent.GetValueOrDefault(agent) } : h)],
            };
        }
        catch (Exception ex) when (ex is NpgsqlException or SshConnectionException or TimeoutException or InvalidOperationException)
        {
            return findings with { Database = database, DatabaseError = $"The manager's database ({database.Name} at {database.Host}:{database.Port}) could not be read: {ex.Message}" };
        }
    }

    private static async Task<(string? Revision, int Total, IReadOnlyList<AgentSessions> Sessions)> ReadDatabaseAsync(IRemoteShell managerShell, ManagerDatabase database, CancellationToken ct)
    {
        await using var forward = await managerShell.ForwardAsync(database.Host, database.Port, ct);
        var connection = new NpgsqlConnectionStringBuilder
        {
            Host = forward.Host,
            Port = forward.Port,
            Database = database.Name,
            Username = database.User,
            Password = database.Password,
            Pooling = false,
            Timeout = 15,
            CommandTimeout = 30,
        }.ConnectionString;
        await using var conn = new NpgsqlConnection(connection);
        await conn.OpenAsync(ct);
        string? revision;
        await using (var cmd = new NpgsqlCommand("SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version", conn))
        {
            revision = await cmd.ExecuteScalarAsync(ct) as string;
        }

        var sessions = new List<AgentSessions>();
        await using (var cmd = new NpgsqlCommand(Workloads.PerAgentSql, conn))
        {
            cmd.Parameters.AddWithValue("idle", Workloads.IdleStatuses.ToArray());
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                sessions.Add(new AgentSessions(reader.GetString(0), (int)reader.GetInt64(1)));
            }
        }

        int total;
        await using (var cmd = new NpgsqlCommand(Workloads.TotalSql, conn))
        {
            cmd.Parameters.AddWithValue("idle", Workloads.IdleStatuses.ToArray());
            total = (int)(long)(await cmd.ExecuteScalarAsync(ct))!;
        }

        return (revision, total, sessions);
    }

    public async Task<DiscoveryRecord> DiscoverClusterAsync(Target target, DateTimeOffset at, CancellationToken ct)
    {
        var found = await DiscoverAsync(target, ct);
        var facts = new List<DiscoveredFact>
        {
            new("Hosts", $"{found.Hosts.Count} ({string.Join(", ", ClusterRoles.All.Select(r => (Role: r, Count: found.Hosts.Count(h => h.Roles.Contains(r)))).Where(x => x.Count > 0).Select(x => $"{x.Count} {x.Role}"))})", found.Hosts.Count == 0),
            new("Version spread", found.Spread.Summary, !found.Spread.Uniform),
        };
        facts.AddRange(found.Hosts.Where(h => h.Differs).Select(h => new DiscoveredFact("Differs", $"{h.Address} ({string.Join(",", h.Roles)}): {h.Version ?? h.Error ?? "no version read"}", true)));
        facts.Add(new("Manager database", found.DatabaseError ?? $"{found.Database!.Name} at {found.Database.Host}:{found.Database.Port} as {found.Database.User}; alembic revision {found.AlembicRevision ?? "none"}", found.DatabaseError is not null));
        if (found.DatabaseError is null)
        {
            facts.Add(new("Compute sessions", found.RunningSessions == 0 ? "none running" : $"{found.RunningSessions} running: " + string.Join(", ", found.Sessions.Select(s => $"{s.AgentId} {s.Sessions}")), found.RunningSessions > 0));
        }

        return new DiscoveryRecord(at, null, null) { InstalledVersion = found.Spread.Majority, Facts = facts, Cluster = found };
    }

    /// <summary>Through the target's own connection the manager alone could be seen; a cluster is looked at host by host instead.</summary>
    public Task<DiscoveryRecord> DiscoverTargetAsync(Target target, IRemoteShell shell, DateTimeOffset at, CancellationToken ct) => DiscoverClusterAsync(target, at, ct);

    public async Task<PreflightRun> PreflightAsync(int targetId, ClaimsPrincipal actor, CancellationToken ct, int? forRun = null, Func<string, Task>? onRetry = null)
    {
        var target = await db.Set<Target>().AsNoTracking().FirstOrDefaultAsync(t => t.Id == targetId, ct) ?? throw new InvalidOperationException("No such target.");
        var active = await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.ActiveTargetId == target.Id && r.Id != forRun, ct);
        var found = await DiscoverAsync(target, ct);
        var checks = new List<CheckResult>
        {
            new(CommonChecks.ActiveRun, "No other run is active on this target", active is null ? CheckStatus.Pass : CheckStatus.Fail,
                active is null ? "No other run is planned or running here." : $"Run {active.Id} ({active.State}) is active on this target."),
        };
        checks.AddRange(BackendAiChecks.Evaluate(found, targetId));
        if (target.RequirePassingRehearsalWithin is not null)
        {
            checks.Add(CommonChecks.RecentRehearsalImpossible(target.Id, "Backend.AI"));
        }

        return await PreflightService.RecordAsync(db, audit, clock, actor, target, checks, ct);
    }

    public Task<PreflightRun?> LatestPreflightAsync(int targetId, CancellationToken ct) =>
        db.Set<PreflightRun>().AsNoTracking().Where(p => p.TargetId == targetId).OrderByDescending(p => p.Id).FirstOrDefaultAsync(ct);

    /// <summary>The cluster's hosts (the runbooks' host phases read them when they run).</summary>
    public ClusterService Cluster => cluster;

    /// <summary>One pinned connection per host (the runbooks' host phases take their shells here).</summary>
    public ClusterConnections Connections => connections;

    /// <summary>The fleet phases' per-host progress.</summary>
    public FleetPhaseStore Fleet => fleet;

    /// <summary>
    /// The plan of one hop: every host looked at, the installed version (the cluster's majority), the released
    /// versions from the package index the manager's pip uses (with the target's pip options), and the hop checked
    /// against the guide's rules; a hop of the other kind names the other runbook, a wanted version further away
    /// names the chain (each hop is a run of its own).
    /// </summary>
    public async Task<Plan> DiscoverPlanAsync(Target target, RunbookDefinition runbook, PlanOptions options, CancellationToken ct)
    {
        Plan Refused(string why) => new() { Error = why, Target = target, Runbook = runbook };
        try
        {
            var found = await DiscoverAsync(target, ct);
            if (found.Hosts.Count == 0)
            {
                return Refused("The cluster has no hosts: add them on the target page.");
            }

            if (found.Spread.Majority is not { } installedText || !BackendAiVersion.TryParse(installedText, out var from, out _))
            {
                return Refused("The plan needs the cluster's version: no host reported one (" + found.Spread.Summary + ").");
            }

            var manager = (await cluster.HostsAsync(target.Id, ct)).FirstOrDefault(h => h.IsManager);
            if (manager is null)
            {
                return Refused("No host of the cluster has the manager role.");
            }

            // Values reach the shell quoted, as variables the fixed script reads.
            var listed = await connections.Shell(target, manager).RunAsync(
                $"UC_PY={ShellWords.Quote(ClusterDiscovery.PythonOf(manager.PythonEnv))}\nUC_PIP_OPTIONS={ShellWords.Quote(target.PipOptions ?? "")}\n" + ReleasesScript, ct, HostTimeout);
            var versions = ParseReleases(listed.Output);
            if (listed.ExitCode != 0 || versions.Count == 0)
            {
                return Refused("The released versions could not be read from the package index the manager's pip uses (pip index versions backend.ai-manager): " + listed.Output.Trim());
            }

            var releases = BackendAiReleases.Read(versions, out var listError);
            if (listError is not null)
            {
                return Refused("The package index lists a version that is not one: " + listError);
            }

            var wanted = options.ToVersion;
            if (string.IsNullOrWhiteSpace(wanted))
            {
                var latest = releases.Versions.Max();
                var chain = UpgradePath.Plan(releases, from, latest);
                var first = chain.Hops.FirstOrDefault(h => (h.Kind == HopKind.Major) == (runbook.Id == BackendAiRunbooks.MajorId));
                if (first is null || chain.Hops.Count == 0 || chain.Hops[0] != first)
                {
                    return Refused(chain.Hops.Count == 0 ? $"Backend.AI {from} is the latest release the package index lists." : $"Say which version to upgrade to: the next hop from {from} is {chain.Hops[0].To} ({chain.Hops[0].Kind.ToString().ToLowerInvariant()}).");
                }

                wanted = first.To.ToString();
            }

            if (!BackendAiVersion.TryParse(wanted, out var to, out var versionError))
            {
                return Refused(versionError ?? $"'{wanted}' is not a Backend.AI version.");
            }

            IReadOnlyList<Chains.ChainHop> hops = [];
            if (UpgradePath.Check(releases, from, to) is { } refusal)
            {
                var chain = UpgradePath.Plan(releases, from, to);
                if (!options.Chain || !chain.IsAllowed || chain.Hops.Count < 2)
                {
                    return Refused(chain.IsAllowed && chain.Hops.Count > 1
                        ? $"{refusal.Reason} The allowed path is a chain of {chain.Hops.Count} upgrades, each a run of its own: {string.Join(", ", chain.Hops.Select(h => $"{h.From} → {h.To} ({h.Kind.ToString().ToLowerInvariant()})"))}. Plan the first: {chain.Hops[0].To}."
                        : refusal.Reason);
                }

                // A chain asked for (ADR 0028): this run is its first hop; each next hop is planned afresh when the one before succeeds.
                hops = [.. chain.Hops.Select(ChainHopOf)];
                to = chain.Hops[0].To;
            }

            var kind = UpgradePath.KindOf(from, to);
            var wantedRunbook = kind == HopKind.Major ? BackendAiRunbooks.MajorId : BackendAiRunbooks.MinorId;
            if (runbook.Id != wantedRunbook)
            {
                return Refused($"{from} → {to} is a {kind.ToString().ToLowerInvariant()} upgrade: plan it with the runbook {wantedRunbook}.");
            }

            return new Plan
            {
                Target = target,
                Runbook = runbook,
                Chain = hops,
                FromVersion = from.ToString(),
                ToVersion = to.ToString(),
                Facts = new BackendAiPlanFacts(found, [.. releases.Versions.Select(v => v.ToString())], $"{from} → {to} ({kind.ToString().ToLowerInvariant()})"),
                BackupDirectory = target.BackupDirectory,
                Snapshot = new BackendAiPlanSnapshot
                {
                    FromVersion = from.ToString(),
                    ToVersion = to.ToString(),
                    Hosts = found.Hosts.Count,
                    OtherHosts = found.Hosts.Count(h => !h.Roles.Contains(ClusterRoles.Manager)),
                    Rolling = kind != HopKind.Major,
                },
            };
        }
        catch (Exception ex) when (ex is InvalidOperationException or SshConnectionException or HostKeyNotPinnedException or TimeoutException or RemoteCommandException)
        {
            return Refused("The plan needs the cluster: " + ex.Message);
        }
    }

    /// <summary>A hop of the planner's chain with the runbook that runs it.</summary>
    internal static Chains.ChainHop ChainHopOf(UpgradeHop hop) =>
        new(hop.From.ToString(), hop.To.ToString(), hop.Kind.ToString().ToLowerInvariant(), hop.Kind == HopKind.Major ? BackendAiRunbooks.MajorId : BackendAiRunbooks.MinorId);

    /// <summary>pip's own list of the released versions of the manager package, from the index the manager's pip uses.</summary>
    private const string ReleasesScript = """
        set -f
        if "$UC_PY" -m pip --version >/dev/null 2>&1; then "$UC_PY" -m pip index versions $UC_PIP_OPTIONS backend.ai-manager 2>&1
        else python3 -m pip --python "$UC_PY" index versions $UC_PIP_OPTIONS backend.ai-manager 2>&1; fi
        """;

    /// <summary>The "Available versions: a, b, c" line of <c>pip index versions</c>.</summary>
    internal static IReadOnlyList<string> ParseReleases(string output)
    {
        var line = output.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("Available versions:", StringComparison.Ordinal));
        return line is null ? [] : [.. line["Available versions:".Length..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)];
    }
}

/// <summary>The Backend.AI preflight's checks, from what discovery found.</summary>
public static class BackendAiChecks
{
    public const string HostsReachable = "backendai.hosts";
    public const string OneVersion = "backendai.one-version";
    public const string ManagerDatabase = "backendai.manager-database";

    public static IEnumerable<CheckResult> Evaluate(ClusterFindings found, int targetId)
    {
        var fix = $"/targets/{targetId}";
        var silent = found.Hosts.Where(h => h.Findings is null || h.Error is not null).ToList();
        yield return found.Hosts.Count == 0
            ? new(HostsReachable, "Every host of the cluster answers", CheckStatus.Fail, "The cluster has no hosts: add them on the target page.", fix, "Add hosts")
            : silent.Count == 0
                ? new(HostsReachable, "Every host of the cluster answers", CheckStatus.Pass, $"All {found.Hosts.Count} hosts answered.")
                : new(HostsReachable, "Every host of the cluster answers", CheckStatus.Fail,
                    $"{silent.Count} of {found.Hosts.Count} hosts did not answer: " + string.Join("; ", silent.Take(10).Select(h => $"{h.Address}: {h.Error}")) + (silent.Count > 10 ? "; …" : ""), fix, "Check the hosts");
        var notInstalled = found.Hosts.Where(h => h.Findings is { } f && f.Packages.Values.Any(v => v is null)).ToList();
        yield return found.Spread.Uniform && notInstalled.Count == 0
            ? new(OneVersion, "One Backend.AI version on every host", CheckStatus.Pass, found.Spread.Summary + ".")
            : new(OneVersion, "One Backend.AI version on every host", CheckStatus.Fail,
                $"{found.Spread.Summary}. Differing: " + string.Join("; ", found.Hosts.Where(h => h.Differs || notInstalled.Contains(h)).Take(20).Select(h => $"{h.Address} ({string.Join(",", h.Roles)}) {h.Version ?? "not installed"}")) + ".", fix, "See the hosts");
        yield return found.DatabaseError is null
            ? new(ManagerDatabase, "The manager's database can be read", CheckStatus.Pass, $"{found.Database!.Name}: alembic revision {found.AlembicRevision ?? "none"}.")
            : new(ManagerDatabase, "The manager's database can be read", CheckStatus.Fail, found.DatabaseError, fix, "Check the manager");
        yield return found.DatabaseError is not null
            ? new(Workloads.CheckId, "No compute sessions are running", CheckStatus.Fail, "The sessions could not be counted: the manager's database was not read.", fix, "Check the manager")
            : found.RunningSessions == 0
                ? new(Workloads.CheckId, "No compute sessions are running", CheckStatus.Pass, "No session occupies an agent.")
                : new(Workloads.CheckId, "No compute sessions are running", CheckStatus.Fail,
                    $"{found.RunningSessions} session(s) occupy agents: " + string.Join(", ", found.Sessions.Select(s => $"{s.AgentId}: {s.Sessions}")) + ". Stop every workload first (the guide's first step).", fix, "See the sessions per agent");
    }
}
