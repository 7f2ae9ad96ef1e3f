using System.Text.Json;
using UpgradeConsole.Core.BackendAi;
using UpgradeConsole.Core.Fleet;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.BackendAi;

/// <summary>What a Backend.AI plan records (fixed once the run is planned).</summary>
public sealed record BackendAiPlanSnapshot : IRolloutSnapshot
{
    public string FromVersion { get; init; } = "";

    public string ToVersion { get; init; } = "";

    /// <summary>Hosts per rolling batch of the other components (minor runbook); 0: a quarter of them, at least one.</summary>
    public int BatchSize { get; init; }

    /// <summary>Failed hosts the rollout tolerates before it stops (0: it stops at the first).</summary>
    public int FailuresAllowed { get; init; }

    public int Hosts { get; init; }

    /// <summary>The hosts the components phase acts on (every host but the manager's).</summary>
    public int OtherHosts { get; init; }

    /// <summary>The minor runbook rolls; the major one stops and starts everything at once.</summary>
    public bool Rolling { get; init; }

    int IRolloutSnapshot.RollingHosts => OtherHosts;

    bool IRolloutSnapshot.Rolls => Rolling;

    IRolloutSnapshot IRolloutSnapshot.WithRollout(int batchSize, int failuresAllowed) => this with { BatchSize = batchSize, FailuresAllowed = failuresAllowed };
}

/// <summary>What the plan page and API show of a Backend.AI plan besides the phases.</summary>
public sealed record BackendAiPlanFacts(ClusterFindings Cluster, IReadOnlyList<string> Releases, string Hop);

/// <summary>
/// Backend.AI's minor and major runbooks (runbooks.md, "Backend.AI cluster"; issue 16). Every phase that acts on hosts
/// runs through the fleet executor (ADR 0025) on the cluster's hosts of the phase's roles, each host's step detached
/// through the remote step engine with its own log lines under its address; the manager's phases are fleet phases of
/// one host. A failed host fails the phase with which hosts are on which version; the phase can be retried.
/// </summary>
public static class BackendAiRunbooks
{
    public const string MinorId = "backendai-minor";
    public const string MajorId = "backendai-major";

    /// <summary>How long a restarted component may take to report healthy.</summary>
    public const int HealthSeconds = 60;

    public const string ChangelogUrl = "https://github.com/lablup/backend.ai/blob/main/CHANGELOG.md";

    public static BackendAiPlanSnapshot Snapshot(PhaseContext c) =>
        JsonSerializer.Deserialize<BackendAiPlanSnapshot>(c.Run.PlanJson, JsonSerializerOptions.Web) ?? new BackendAiPlanSnapshot();

    /// <summary>
    /// A phase on the hosts <paramref name="which"/> selects, each running <paramref name="script"/>, from the phase's
    /// stored per-host progress: hosts that succeeded in an earlier attempt are not run again, a host found running is
    /// reattached. A person's retry of the phase runs its failed hosts again, then goes on with the rollout; a retry of
    /// one host (<see cref="RunPhase.RetryHost"/>) runs that host alone, and the phase is done once every host is.
    /// </summary>
    private static PhaseExecution OnHosts(Func<ClusterHost, bool> which, string script, bool rolling = false, Func<BackendAiPlanSnapshot, string>? version = null,
        Func<BackendAiPlanSnapshot, IReadOnlyDictionary<string, string>>? extra = null) =>
        PhaseExecution.Builtin(async c =>
        {
            var runtime = (BackendAiRuntime)c.Product;
            var plan = Snapshot(c);
            var hosts = (await runtime.Cluster.HostsAsync(c.Target.Id, c.Cancellation)).Where(which).OrderBy(h => h.Id).ToList();
            if (hosts.Count == 0)
            {
                return PhaseOutcome.Done("no host of the cluster has this phase's roles");
            }

            var to = version?.Invoke(plan) ?? plan.ToVersion;
            var fleet = hosts.Select(h => new FleetHost(h.Address, runtime.Connections.Shell(c.Target, h))
            {
                Environment = h.Step.Environment(to, c.Target.PipOptions),
            }).ToList();
            var batch = !rolling ? FleetBatchSize.All : FleetBatchSize.OfHosts(plan.BatchSize > 0 ? plan.BatchSize : Math.Max(1, hosts.Count / 4));
            var step = new FleetStep
            {
                RunId = c.Run.RemoteRunId,
                // Hosts number their own attempts (a step directory per host and attempt): the phase's retries continue them.
                StepId = c.Phase.Key,
                Script = script,
                Environment = extra?.Invoke(plan) ?? new Dictionary<string, string>(),
                Timeout = c.Runbook.Phase(c.Phase.Key)?.Timeout,
            };
            var progress = await runtime.Fleet.LoadAsync(c.Run.Id, c.Phase, [.. fleet.Select(h => h.Label)], c.Cancellation);
            var only = c.Phase.RetryHost;
            if (only is not null && fleet.All(h => h.Label != only))
            {
                return PhaseOutcome.Failed($"{only} is not a host of this phase any more; retry the phase instead.");
            }

            var counts = FleetOutcome.Counts(progress.Hosts.Where(h => h.State != FleetHostState.Pending));
            await c.WriteAsync(only is not null
                ? $"Retrying {only} alone (attempt {(progress[only].State == FleetHostState.Failed ? progress[only].Attempt + 1 : progress[only].Attempt).ToString(System.Globalization.CultureInfo.InvariantCulture)})."
                : $"{hosts.Count} host(s){(rolling ? $", in rolling batches of {batch.HostsPerBatch(hosts.Count).ToString(System.Globalization.CultureInfo.InvariantCulture)}" : "")}: {string.Join(", ", hosts.Select(h => h.Address))}" +
                  (counts.Length > 0 ? $" (from an earlier attempt: {counts})" : ""));
            await using var log = new FleetPhaseLog(c, runtime.Fleet);
            using var executor = new FleetExecutor(fleet, step, log, new FleetOptions { Batch = batch, Policy = new FleetFailurePolicy(plan.FailuresAllowed) }, progress);
            FleetOutcome outcome;
            if (only is not null)
            {
                await executor.RetryHostAsync(only, c.Cancellation);
                outcome = executor.Current();
            }
            else
            {
                outcome = await executor.RetryFailedThenRunAsync(c.Cancellation);
            }

            await log.FlushAsync();
            foreach (var host in outcome.Hosts.Where(h => h.State is not FleetHostState.Succeeded and not FleetHostState.Pending))
            {
                await c.WriteAsync(host.Describe());
            }

            var versions = VersionsSentence(outcome, plan, to, rolling);
            if (versions.Length > 0)
            {
                await c.WriteAsync(versions);
            }

            await c.WriteAsync(outcome.Summary);
            if (outcome.Succeeded)
            {
                return PhaseOutcome.Done(outcome.Summary) with { Facts = new { hosts = outcome.Hosts.Select(h => new { host = h.Label, state = h.State.ToString() }) } };
            }

            var pending = outcome.Hosts.Count(h => h.State == FleetHostState.Pending);
            var failed = outcome.Hosts.Where(h => h.IsFailure).Select(h => h.Label).ToList();
            var next = failed.Count > 0
                ? $" Fix {string.Join(", ", failed)} and retry that host alone or the whole phase (hosts already done are not run again)."
                : $" {pending.ToString(System.Globalization.CultureInfo.InvariantCulture)} host(s) not started yet: retry the phase to go on with the rollout.";
            return PhaseOutcome.Failed(outcome.Summary + (only is not null ? $" {only}: {outcome.Hosts.Single(h => h.Label == only).State.ToString().ToLowerInvariant()}." : "") + next);
        });

    /// <summary>For a rolling phase that did not finish: which hosts are on which version (succeeded: the new one; not started: the old).</summary>
    private static string VersionsSentence(FleetOutcome outcome, BackendAiPlanSnapshot plan, string to, bool rolling)
    {
        if (!rolling || outcome.Succeeded)
        {
            return "";
        }

        var done = outcome.Hosts.Where(h => h.State == FleetHostState.Succeeded).Select(h => h.Label).ToList();
        var waiting = outcome.Hosts.Where(h => h.State == FleetHostState.Pending).Select(h => h.Label).ToList();
        var unknown = outcome.Hosts.Where(h => h.IsFailure).Select(h => h.Label).ToList();
        var parts = new List<string>();
        if (done.Count > 0)
        {
            parts.Add($"on {to}: {string.Join(", ", done)}");
        }

        if (waiting.Count > 0)
        {
            parts.Add($"still on {plan.FromVersion} (not started): {string.Join(", ", waiting)}");
        }

        if (unknown.Count > 0)
        {
            parts.Add($"failed mid-way (look at their lines; the versions phase reads them): {string.Join(", ", unknown)}");
        }

        return "Hosts " + string.Join("; ", parts) + ".";
    }

    /// <summary>After the upgrade: every host of the cluster on the new version (discovery on every host).</summary>
    private static PhaseExecution VersionsCheck => PhaseExecution.Builtin(async c =>
    {
        var runtime = (BackendAiRuntime)c.Product;
        var plan = Snapshot(c);
        var found = await runtime.DiscoverAsync(c.Target, c.Cancellation);
        var off = found.Hosts.Where(h => h.Version != plan.ToVersion).ToList();
        foreach (var host in found.Hosts)
        {
            // Not under the "[host] " prefix: that marks the host's own output (counted to resume a fleet phase, ADR 0027).
            await c.WriteAsync($"{host.Address}: {string.Join(",", host.Roles)} {host.Version ?? host.Error ?? "no version read"}");
        }

        return off.Count == 0
            ? PhaseOutcome.Done($"all {found.Hosts.Count} hosts are on {plan.ToVersion}")
            : PhaseOutcome.Failed($"{off.Count} host(s) are not on {plan.ToVersion}: " + string.Join("; ", off.Select(h => $"{h.Address} {h.Version ?? h.Error ?? "unknown"}")));
    });

    private static PhaseDefinition Preflight(params string[] required) =>
        new("preflight", "Preflight again", "Every check runs again on every host (versions, service state, the manager's database, running compute sessions); the ones a phase needs must pass or an Admin overrides them with a written reason.",
            PreflightGate.Execution)
        {
            Idempotent = true,
            Gate = true,
            RequiredChecks = CheckRequirement.Of([CommonChecks.ActiveRun, .. required]),
            Preview = _ => "every preflight check, run again on every host and the manager's database",
        };

    private static string Preview(string script, PlanInputs p) => BackendAiScripts.Preview(script, p.ToVersion);

    /// <summary>Components back to the version upgraded from, host by host (every host, the manager last).</summary>
    private static readonly RollbackAction ComponentsBack = new("rb-components", r => $"Every component back to {r.FromVersion}, host by host",
        OnHosts(_ => true, BackendAiScripts.Then(BackendAiScripts.Stop, BackendAiScripts.Install, BackendAiScripts.Start),
            version: s => s.FromVersion), TimeSpan.FromMinutes(30));

    /// <summary>
    /// The manager's database dumped before anything migrates it (the manager stopped), verified, its size and SHA-256
    /// recorded on the run: what the rollback restores past the point of no return.
    /// </summary>
    private static PhaseDefinition ManagerBackup => new("manager-backup", "Dump the manager's database",
        "pg_dump -Fc of the manager's database (its settings read from the manager's own manager.toml) into the target's backup directory, verified with pg_restore --list; size and SHA-256 recorded on the run. A rollback past the point of no return restores it.",
        PhaseExecution.Remote(c =>
        {
            if (((BackendAiSession)c.Session).Manager is not { } manager)
            {
                return RemoteScript.Refused("The cluster has no manager host: add it (role manager) before the upgrade.");
            }

            var run = c.Run;
            // The run's remote id (its number and a random key) keeps dumps of different runs and dashboards apart in a shared directory.
            var file = $"{c.Target.BackupDirectory.TrimEnd('/')}/backendai-{run.RemoteRunId}-{run.FromVersion}-manager.dump";
            var environment = new Dictionary<string, string>(manager.Step.Environment(run.FromVersion, c.Target.PipOptions)) { ["UC_BACKUP_FILE"] = file };
            return DumpSteps.Recording(c, BackendAiScripts.DumpDatabase, environment, "dump",
                backup => PhaseOutcome.Done($"{backup.Path}, {backup.Size} bytes, SHA-256 {backup.Sha256[..12]}…, {backup.Milliseconds} ms"));
        }))
    {
        Idempotent = true,
        Timeout = TimeSpan.FromHours(2),
        Preview = p => BackendAiScripts.Preview(BackendAiScripts.DumpDatabase, p.ToVersion),
    };

    /// <summary>The manager's database back from this run's verified dump (the manager stopped; the components' rollback starts it again).</summary>
    private static readonly RollbackAction DatabaseBack = new("rb-database", r => $"Restore the manager's database from this run's verified dump{(r.BackupPath is null ? "" : " " + r.BackupPath)}",
        PhaseExecution.Remote(c =>
        {
            var run = c.Run;
            if (((BackendAiSession)c.Session).Manager is not { } manager)
            {
                return RemoteScript.Refused("The cluster has no manager host any more: restore the manager's database by hand, then mark this action done.");
            }

            if (run.BackupPath is null || run.BackupSha256 is null)
            {
                return RemoteScript.Refused("This run took no dump of the manager's database: restore it from your own dump (pg_restore), then mark this action done.");
            }

            var environment = new Dictionary<string, string>(manager.Step.Environment(run.FromVersion, c.Target.PipOptions))
            {
                ["UC_BACKUP_FILE"] = run.BackupPath,
                ["UC_BACKUP_SHA256"] = run.BackupSha256,
            };
            return new RemoteScript(BackendAiScripts.RestoreDatabase, environment);
        }),
        TimeSpan.FromHours(2));

    private static PhaseDefinition ManagerPhase(string key, string title, string description, string script, bool pointOfNoReturn = false, IReadOnlyList<RollbackAction>? undo = null,
        Func<BackendAiPlanSnapshot, IReadOnlyDictionary<string, string>>? extra = null) =>
        new(key, title, description, OnHosts(h => h.IsManager, script, extra: extra))
        {
            Idempotent = true,
            PointOfNoReturn = pointOfNoReturn,
            MigratesData = pointOfNoReturn,
            Timeout = TimeSpan.FromMinutes(pointOfNoReturn ? 120 : 15),
            Preview = p => Preview(script, p),
            Rollback = undo ?? [],
            RollbackText = undo is null ? null : (undo.Contains(DatabaseBack) ? "The manager's database restored from this run's dump, then every" : "Every") + " component back to the version upgraded from, host by host.",
        };

    /// <summary>The minor upgrade (same major): rolling batches for the components other than the manager.</summary>
    public static RunbookDefinition Minor { get; } = new(
        MinorId,
        "Backend.AI minor upgrade (rolling)",
        BackendAiProduct.ProductId,
        [
            new("changelog", "Read the changelog", $"The guide's first step for a minor upgrade: read what changed between the two releases ({ChangelogUrl}), then tick the items.", PhaseExecution.Manual)
            {
                Idempotent = true,
            },
            Preflight(BackendAiChecks.HostsReachable, BackendAiChecks.OneVersion, BackendAiChecks.ManagerDatabase, Workloads.CheckId),
            new("schema-check", "Check for schema changes", "The new manager package's alembic head (installed in a scratch environment on the manager, removed afterwards) beside the database's current revision: the log says whether this release changes the schema. Nothing is stopped or changed.",
                OnHosts(h => h.IsManager, BackendAiScripts.SchemaCheck))
            {
                Idempotent = true,
                Timeout = TimeSpan.FromMinutes(15),
                Preview = p => Preview(BackendAiScripts.SchemaCheck, p),
            },
            ManagerPhase("manager-stop", "Stop the manager", "The manager host's stop command, as written for the host.", BackendAiScripts.Stop, undo: [ComponentsBack]),
            ManagerBackup,
            ManagerPhase("manager-install", "Install the new manager", "pip install -U backend.ai-<role>==V for each role of the manager host, each version read back.", BackendAiScripts.Install, undo: [ComponentsBack]),
            ManagerPhase("manager-migrate", "Upgrade the manager's database", "alembic upgrade head with the manager's alembic.ini: the point of no return (the database schema changes).", BackendAiScripts.AlembicUpgrade, pointOfNoReturn: true, undo: [ComponentsBack, DatabaseBack]),
            ManagerPhase("manager-start", "Start the manager", "The manager host's start command, then its status command until healthy.", BackendAiScripts.Then(BackendAiScripts.Start, BackendAiScripts.Health(HealthSeconds))),
            new("components", "Upgrade the other components in rolling batches", "Host by host in batches (a quarter of the hosts at a time unless the plan says otherwise): stop, pip install -U, start, health check. The first failed host stops the rollout after its batch; the log says which hosts are on which version.",
                OnHosts(h => !h.IsManager, BackendAiScripts.RollHost(HealthSeconds), rolling: true))
            {
                Idempotent = true,
                Timeout = TimeSpan.FromMinutes(30),
                Preview = p => Preview(BackendAiScripts.RollHost(HealthSeconds), p),
                Rollback = [ComponentsBack],
                RollbackText = "Every component back to the version upgraded from, host by host.",
            },
            new("versions", "One version everywhere", "Every host is looked at again: each component must report the new version.", VersionsCheck)
            {
                Idempotent = true,
                Preview = _ => "discovery on every host (importlib.metadata of each backend.ai-<role>)",
            },
        ],
        ["I read the changelog between the two releases (" + ChangelogUrl + ")", "I know which hosts run compute sessions and their users were told"])
    {
        RollbackOrder = [DatabaseBack, ComponentsBack],
        PlansChains = true,
    };

    /// <summary>The major upgrade: downtime, everything stopped, the manager migrated and its missing revisions applied, then everything started.</summary>
    public static RunbookDefinition Major { get; } = new(
        MajorId,
        "Backend.AI major upgrade (downtime)",
        BackendAiProduct.ProductId,
        [
            new("announce", "Announce the downtime", "A major upgrade has no rolling: every component stops. Tell the users when, and tick the items.", PhaseExecution.Manual)
            {
                Idempotent = true,
            },
            Preflight(BackendAiChecks.HostsReachable, BackendAiChecks.OneVersion, BackendAiChecks.ManagerDatabase, Workloads.CheckId),
            new("stop-all", "Stop every component", "Every host's stop command, all hosts at once (no rolling in a major upgrade).", OnHosts(_ => true, BackendAiScripts.Stop))
            {
                Idempotent = true,
                Timeout = TimeSpan.FromMinutes(15),
                Preview = p => Preview(BackendAiScripts.Stop, p),
                Rollback = [ComponentsBack],
                RollbackText = "Every component back to the version upgraded from, host by host.",
            },
            ManagerBackup,
            ManagerPhase("manager-install", "Install the new manager", "pip install -U backend.ai-<role>==V for each role of the manager host, each version read back.", BackendAiScripts.Install, undo: [ComponentsBack]),
            ManagerPhase("manager-migrate", "Upgrade the manager's database", "alembic upgrade head with the manager's alembic.ini: the point of no return.", BackendAiScripts.AlembicUpgrade, pointOfNoReturn: true, undo: [ComponentsBack, DatabaseBack]),
            ManagerPhase("manager-revisions", "Apply the revisions the prior release missed",
                "backend.ai mgr schema apply-missing-revisions <the version upgraded from>. The upgrade guide prints this command as \"apply-mission-revisions\", a typo: the real command, run here, is apply-missing-revisions.",
                BackendAiScripts.ApplyMissingRevisions, undo: [ComponentsBack, DatabaseBack], extra: s => new Dictionary<string, string> { ["UC_PREVIOUS"] = s.FromVersion }),
            ManagerPhase("manager-start", "Start the manager", "The manager host's start command, then its status command until healthy.", BackendAiScripts.Then(BackendAiScripts.Start, BackendAiScripts.Health(HealthSeconds))),
            new("components", "Upgrade every other component", "All hosts at once (bounded at 50 at a time): pip install -U, start, health check.",
                OnHosts(h => !h.IsManager, BackendAiScripts.Then(BackendAiScripts.SkipWhenDone, BackendAiScripts.Install, BackendAiScripts.Start, BackendAiScripts.Health(HealthSeconds))))
            {
                Idempotent = true,
                Timeout = TimeSpan.FromMinutes(30),
                Preview = p => Preview(BackendAiScripts.Install, p),
                Rollback = [ComponentsBack],
                RollbackText = "Every component back to the version upgraded from, host by host.",
            },
            new("versions", "One version everywhere", "Every host is looked at again: each component must report the new version.", VersionsCheck)
            {
                Idempotent = true,
                Preview = _ => "discovery on every host (importlib.metadata of each backend.ai-<role>)",
            },
        ],
        ["The downtime was announced to every user", "No compute session is left running (the preflight refuses any, with no override)"])
    {
        RollbackOrder = [DatabaseBack, ComponentsBack],
        PlansChains = true,
        NeverOverridden = new HashSet<string>([Workloads.CheckId], StringComparer.Ordinal),
    };

    public static IReadOnlyList<RunbookDefinition> All { get; } = [Minor, Major];
}
