using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Omero;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Omero;

/// <summary>A connection to an OMERO target for one phase or one request; the database password only to mask it.</summary>
public sealed class OmeroSession(IRemoteShell shell, IReadOnlyCollection<string> secrets, IDisposable? slot) : IProductSession
{
    public IRemoteShell Shell => shell;

    public IReadOnlyCollection<string> Secrets => secrets;

    public ValueTask DisposeAsync()
    {
        slot?.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// OMERO's services: a session on the target, discovery over SSH (<see cref="OmeroDiscovery"/>), the
/// preflight (<see cref="OmeroChecks"/>, the precheck SQL run from the release zip) and the plan.
/// An OMERO target's settings: <see cref="Target.WorkingDirectory"/> is the <c>OMERO.server</c> path
/// (OMERODIR), <see cref="Target.PythonPath"/> the Python of the venv holding omero-py (or the venv
/// itself), <see cref="Target.BackupDirectory"/> and <see cref="Target.PipOptions"/> as for Fractal. The
/// new release's zip lies beside <c>OMERO.server</c> (where the guide unpacks it) unless the plan names its path.
/// </summary>
public sealed class OmeroRuntime(AppDbContext db, TargetService targets, TargetConnections connections, TargetWorkLimiter limiter, AuditLog audit, TimeProvider clock, IConfiguration configuration) : IProductRuntime, IProductDiscovery
{
    /// <summary>The setting naming where releases are downloaded from, <c>{version}</c> standing for the version.</summary>
    public const string ReleaseUrlSetting = "UpgradeConsole:Omero:ReleaseUrl";

    /// <summary>
    /// The configured download URL of <paramref name="version"/>'s release zip, or null when none is
    /// configured. Only an absolute http(s) URL with <c>{version}</c> is taken; the version is a checked
    /// OMERO version (digits and dots) and is escaped anyway.
    /// </summary>
    public static string? ReleaseUrl(IConfiguration configuration, string version)
    {
        var template = configuration[ReleaseUrlSetting]?.Trim();
        if (string.IsNullOrEmpty(template))
        {
            return null;
        }

        if (!template.Contains("{version}", StringComparison.Ordinal)
            || !Uri.TryCreate(template.Replace("{version}", "0", StringComparison.Ordinal), UriKind.Absolute, out var uri)
            || uri.Scheme is not ("https" or "http"))
        {
            throw new InvalidOperationException($"{ReleaseUrlSetting} must be an absolute http(s) URL containing {{version}}, e.g. https://downloads.example.org/omero/{{version}}/OMERO.server-{{version}}-ice36.zip.");
        }

        return template.Replace("{version}", Uri.EscapeDataString(version), StringComparison.Ordinal);
    }

    /// <summary>Null when the host can fetch <paramref name="url"/> (a HEAD request by curl on the host), else why not in curl's words.</summary>
    private static async Task<string?> ProbeDownloadAsync(IRemoteShell shell, string url, CancellationToken ct)
    {
        var probe = await shell.RunAsync(InBash($"command -v curl >/dev/null || {{ echo 'curl is not installed on the host'; exit 3; }}; curl --fail --silent --show-error --location --max-redirs 5 --head --max-time 20 -o /dev/null -- {ShellWords.Quote(url)} 2>&1"), ct, TimeSpan.FromSeconds(40));
        return probe.ExitCode == 0 ? null : (probe.Output + probe.StandardError).Trim() is { Length: > 0 } words ? words : $"curl exited with {probe.ExitCode.ToString(CultureInfo.InvariantCulture)}";
    }

    private static readonly TimeSpan DiscoveryTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan PrecheckTimeout = TimeSpan.FromMinutes(30);

    /// <summary>OMERO's scripts are bash (pipefail, process substitution); the login shell may be another sh.</summary>
    private static string InBash(string script) => "exec bash -c " + ShellWords.Quote(script);

    public static OmeroHostSettings HostSettings(Target target) => new(
        target.WorkingDirectory,
        Venv(target.PythonPath) ?? throw new InvalidOperationException("Set the target's Python path to the Python of OMERO's venv (…/venv/bin/python)."),
        target.BackupDirectory,
        (target.PipOptions ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries));

    /// <summary>The venv of a Python path (<c>/opt/omero/venv/bin/python3</c> → <c>/opt/omero/venv</c>), or the path itself when it names the venv.</summary>
    public static string? Venv(string? python)
    {
        if (string.IsNullOrWhiteSpace(python))
        {
            return null;
        }

        var path = python.Trim().TrimEnd('/');
        var slash = path.LastIndexOf('/');
        return slash > 0 && path[(slash + 1)..].StartsWith("python", StringComparison.Ordinal) && path[..slash].EndsWith("/bin", StringComparison.Ordinal)
            ? path[..(slash - 4)]
            : path;
    }

    public async Task<IProductSession> OpenSessionAsync(Target target, CancellationToken ct) => await OpenAsync(target, null, ct);

    private async Task<OmeroSession> OpenAsync(Target target, IDisposable? slot, CancellationToken ct)
    {
        try
        {
            var shell = await connections.ShellAsync(target, ct);
            // Read only to mask it in the log; the scripts read it themselves on the host.
            var pass = await shell.RunAsync(InBash(OmeroScripts.Header(HostSettings(target), strict: false) + "cfg omero.db.pass"), ct, TimeSpan.FromSeconds(60));
            var secret = pass.ExitCode == 0 ? pass.Output.TrimEnd('\n', '\r') : "";
            return new OmeroSession(shell, secret.Length >= 4 ? [secret] : [], slot);
        }
        catch
        {
            slot?.Dispose();
            throw;
        }
    }

    /// <summary>People's requests wait their turn in the target's queue (run phases never do).</summary>
    private async Task<OmeroSession> OpenForPeopleAsync(Target target, CancellationToken ct)
    {
        var runExecuting = await db.Runs.AsNoTracking().AnyAsync(r => r.ActiveTargetId == target.Id && (r.State == RunState.Running || r.State == RunState.RollingBack), ct);
        return await OpenAsync(target, await limiter.EnterAsync(target.Id, target.Name, runExecuting, ct), ct);
    }

    /// <summary>A size as the OMERO pages show it (GiB, MiB or bytes; "?" when unknown).</summary>
    public static string Size(long? bytes) => bytes switch
    {
        null => "?",
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.0} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.0} MiB",
        _ => $"{bytes} bytes",
    };

    /// <summary>What the target page shows of an OMERO server: installation, database and what the upgrade needs (the password never: omero masks it).</summary>
    public async Task<DiscoveryRecord> DiscoverTargetAsync(Target target, IRemoteShell shell, DateTimeOffset at, CancellationToken ct)
    {
        var d = await DiscoverAsync(shell, target, ct);
        var facts = new List<DiscoveredFact>
        {
            new("OMERO.server", d.ServerVersion ?? "not found", d.ServerVersion is null),
            new("OMERODIR", d.OmeroDir is null ? "?" : $"{d.OmeroDir} ({(d.ServerIsSymlink ? "a symlink to " : "a directory: ")}{d.ServerTree})"),
            new("Server status", d.AdminStatusExit switch { 0 => "running (omero admin status)", null => "unknown", _ => "not running (omero admin status)" }, d.AdminStatusExit is not 0),
            new("Database", d.Database is { } db
                ? $"{db.Name} on {db.Host}:{db.Port} as {db.User} (password {(db.HasPassword ? "set, never shown" : "not set")}); schema {d.DatabaseVersion?.ToString() ?? "?"}; {Size(d.DatabaseSizeBytes)}"
                : "not read", d.Database is null),
            new("PostgreSQL", d.PostgresVersionNum is { } pg ? $"{OmeroReleases.PrettyPostgres(pg)}, {d.Encoding ?? "?"}" : "not read", d.PostgresVersionNum is null),
            new("Backup room", $"{Size(d.BackupFreeBytes)} free in {target.BackupDirectory}"),
            new("Binary repository", d.DataDirectory is null ? "?" : $"{d.DataDirectory}; BioFormatsCache {(d.BioFormatsCacheBytes is { } cache ? Size(cache) : "none")}"),
            new("omero-py", d.OmeroPyVersion ?? "not found", d.OmeroPyVersion is null),
            new("omero-certificates", d.OmeroCertificatesVersion ?? "not installed"),
            new("Java", d.JavaVersion ?? "not found", d.JavaVersion is null),
        };
        facts.AddRange(d.Problems.Select(problem => new DiscoveredFact("Problem", problem, true)));
        return new DiscoveryRecord(at, null, null) { InstalledVersion = d.ServerVersion, Facts = facts };
    }

    public static async Task<OmeroDiscoveryResult> DiscoverAsync(IRemoteShell shell, Target target, CancellationToken ct)
    {
        var result = await shell.RunAsync(InBash(OmeroDiscovery.Script(HostSettings(target))), ct, DiscoveryTimeout);
        return OmeroDiscovery.Parse(result.Output);
    }

    /// <summary>
    /// The release zip for <paramref name="to"/> (a version, or the zip's absolute path on the host):
    /// the path and version, whether it is there, or why there is none. Without a version the newest
    /// zip beside OMERO.server that is newer than <paramref name="installed"/> is taken.
    /// </summary>
    public static async Task<(string? Zip, string? Version, bool Present, string? Problem)> FindReleaseAsync(IRemoteShell shell, Target target, string? to, string? installed, CancellationToken ct)
    {
        to = to?.Trim();
        if (to is { Length: > 0 } && to.EndsWith(".zip", StringComparison.OrdinalIgnoreCase))
        {
            var version = OmeroReleases.VersionOfRelease(OmeroReleases.ReleaseDirectoryName(Path.GetFileName(to)));
            if (version is null || !to.StartsWith('/'))
            {
                return (null, null, false, $"'{to}' is not the absolute path of an OMERO.server-<version>[-ice36].zip.");
            }

            var exists = await shell.RunAsync($"test -f {ShellWords.Quote(to)} && echo yes", ct, TimeSpan.FromSeconds(30));
            return (to, version, exists.Output.Trim() == "yes", null);
        }

        if (to is { Length: > 0 } && OmeroReleases.SchemaOf(to) is null)
        {
            return (null, null, false, $"'{to}' is not an OMERO.server version such as 5.6.3 (or the path of its release zip).");
        }

        var dir = ShellWords.QuotePath(target.WorkingDirectory);
        var listed = await shell.RunAsync($"d=$(dirname -- {dir}); for f in \"$d\"/OMERO.server-*.zip; do [ -f \"$f\" ] && printf '%s\\n' \"$f\"; done; true", ct, TimeSpan.FromSeconds(30));
        var zips = listed.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(f => (Path: f, Version: OmeroReleases.VersionOfRelease(OmeroReleases.ReleaseDirectoryName(Path.GetFileName(f)))))
            .Where(z => z.Version is not null)
            .ToList();
        if (to is { Length: > 0 })
        {
            var match = zips.FirstOrDefault(z => z.Version == to);
            return match.Path is null
                ? ($"{Path.GetDirectoryName(target.WorkingDirectory.TrimEnd('/'))}/OMERO.server-{to}-ice36.zip", to, false, null)
                : (match.Path, to, true, null);
        }

        var newest = zips.Where(z => installed is null || Compare(z.Version!, installed) > 0).OrderByDescending(z => z.Version!, Comparer<string>.Create(Compare)).FirstOrDefault();
        return newest.Path is null
            ? (null, null, false, "No OMERO.server release zip newer than the installed server lies beside OMERO.server; put the new release's zip there (or name it on the plan).")
            : (newest.Path, newest.Version, true, null);
    }

    private static int Compare(string a, string b)
    {
        static int[] Parts(string v) => [.. v.Split('.').Select(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : 0)];
        var (x, y) = (Parts(a), Parts(b));
        for (var i = 0; i < Math.Max(x.Length, y.Length); i++)
        {
            var c = (i < x.Length ? x[i] : 0).CompareTo(i < y.Length ? y[i] : 0);
            if (c != 0)
            {
                return c;
            }
        }

        return 0;
    }

    public async Task<PreflightRun> PreflightAsync(int targetId, ClaimsPrincipal actor, CancellationToken ct, int? forRun = null, Func<string, Task>? onRetry = null)
    {
        var target = await targets.FindAsync(targetId, ct) ?? throw new InvalidOperationException("No such target.");
        IReadOnlyList<CheckResult> checks;
        try
        {
            checks = await CheckAsync(target, forRun, ct);
        }
        catch (Exception ex) when (ex is InvalidOperationException or SshConnectionException or HostKeyNotPinnedException or RemoteCommandException or TimeoutException)
        {
            checks = [new CheckResult(CommonChecks.TargetReachable, "The target can be reached and read", CheckStatus.Fail, ex.Message, $"/targets/{targetId}", "Check the target")];
        }

        return await PreflightService.RecordAsync(db, audit, clock, actor, target, checks, ct);
    }

    private async Task<IReadOnlyList<CheckResult>> CheckAsync(Target target, int? forRun, CancellationToken ct)
    {
        var active = await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.ActiveTargetId == target.Id && r.Id != forRun, ct);
        var run = forRun is null ? null : await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == forRun, ct);
        var snapshot = run is null ? null : JsonSerializer.Deserialize<OmeroPlanSnapshot>(run.PlanJson, JsonSerializerOptions.Web);
        // The run's own preflight is a phase: it never waits behind people's requests.
        await using var session = forRun is null ? await OpenForPeopleAsync(target, ct) : await OpenAsync(target, null, ct);
        var shell = session.Shell;
        var discovery = await DiscoverAsync(shell, target, ct);
        var (zip, version, present, problem) = snapshot is { ReleaseZip.Length: > 0 }
            ? await FindReleaseAsync(shell, target, snapshot.ReleaseZip, discovery.ServerVersion, ct)
            : await FindReleaseAsync(shell, target, null, discovery.ServerVersion, ct);

        OmeroPrecheckResult? precheck = null;
        if (zip is not null && present && version is not null
            && OmeroUpgradePlan.For(discovery, HostSettings(target), zip, version, "preflight", vacuum: false) is ({ Steps.Count: > 0 } plan, _))
        {
            var result = await shell.RunAsync(InBash(OmeroScripts.Precheck(plan)), ct, PrecheckTimeout);
            precheck = new OmeroPrecheckResult(plan.Steps[0].PrecheckPath, plan.Steps[0].To, result.ExitCode, result.Output + result.StandardError);
        }

        var checks = new List<CheckResult>
        {
            new(CommonChecks.ActiveRun, "No other run is active on this target", active is null ? CheckStatus.Pass : CheckStatus.Fail,
                active is null ? "No other run is planned or running here." : $"Run {active.Id} ({active.State}) is active on this target."),
            discovery.Problems.Count == 0
                ? new("omero.discovery", "OMERO.server and its database can be read", CheckStatus.Pass,
                    $"OMERO.server {discovery.ServerVersion} in {discovery.ServerTree}, database {discovery.Database?.Name} at {discovery.DatabaseVersion}, omero-py {discovery.OmeroPyVersion ?? "?"}, Java {discovery.JavaVersion ?? "?"}.")
                : new("omero.discovery", "OMERO.server and its database can be read", CheckStatus.Fail, string.Join(" ", discovery.Problems)),
        };
        // Not on the host: a run downloads it from the URL its plan recorded (none: it cannot), a target's preflight from the one configured now.
        var downloadUrl = present || version is null ? null : snapshot is not null ? snapshot.DownloadUrl : ReleaseUrl(configuration, version);
        var downloadProblem = downloadUrl is null ? null : await ProbeDownloadAsync(shell, downloadUrl, ct);
        var evaluated = OmeroChecks.Evaluate(discovery, version ?? "", precheck, present, downloadUrl, downloadProblem).ToList();
        if (problem is not null)
        {
            var i = evaluated.FindIndex(c => c.Id == "omero.release");
            // No version chosen yet and none beside OMERO.server: with a download URL the plan names the version.
            evaluated[i] = !string.IsNullOrEmpty(configuration[ReleaseUrlSetting]) && snapshot is null
                ? evaluated[i] with { Status = CheckStatus.Warn, Explanation = "No release zip newer than the installed server lies beside OMERO.server yet; name the version on the plan and the run downloads it from the configured URL (this preflight on the plan's run checks the host can)." }
                : evaluated[i] with { Status = CheckStatus.Fail, Explanation = problem };
        }

        checks.AddRange(evaluated);
        checks.Add(await Rehearsals.PassingRehearsal.CheckAsync(db, target, clock.GetUtcNow(), ct));
        return checks;
    }

    public Task<PreflightRun?> LatestPreflightAsync(int targetId, CancellationToken ct) =>
        db.Set<PreflightRun>().AsNoTracking().Where(p => p.TargetId == targetId).OrderByDescending(p => p.Id).FirstOrDefaultAsync(ct);

    public async Task<Plan> DiscoverPlanAsync(Target target, RunbookDefinition runbook, PlanOptions options, CancellationToken ct)
    {
        try
        {
            // The plan page is a person's request: it waits its turn in the target's queue.
            await using var session = await OpenForPeopleAsync(target, ct);
            var discovery = await DiscoverAsync(session.Shell, target, ct);
            if (discovery.ServerVersion is null || discovery.DatabaseVersion is null)
            {
                return new Plan { Error = "The plan needs to know what is installed: " + string.Join(" ", discovery.Problems), Target = target, Runbook = runbook };
            }

            var (zip, version, present, problem) = await FindReleaseAsync(session.Shell, target, options.ToVersion, discovery.ServerVersion, ct);
            if (problem is not null || zip is null || version is null)
            {
                return new Plan { Error = problem ?? "No release to upgrade to.", Target = target, Runbook = runbook };
            }

            if (version == discovery.ServerVersion)
            {
                return new Plan { Error = $"OMERO.server {version} is already installed.", Target = target, Runbook = runbook };
            }

            var (plan, refused) = OmeroUpgradePlan.For(discovery, HostSettings(target), zip, version, "run-ID", options.DataMigration);
            plan = plan is null || present ? plan : plan with { DownloadUrl = ReleaseUrl(configuration, version) };
            if (plan is null)
            {
                return new Plan { Error = refused, Target = target, Runbook = runbook };
            }

            return new Plan
            {
                Target = target,
                Runbook = runbook,
                FromVersion = discovery.ServerVersion,
                ToVersion = version,
                Facts = new OmeroPlanFacts(plan, discovery) { ReleasePresent = present },
                DatabaseSize = discovery.DatabaseSizeBytes,
                BackupDirectory = target.BackupDirectory,
                Snapshot = new OmeroPlanSnapshot
                {
                    ReleaseZip = zip,
                    TargetVersion = version,
                    CurrentDb = plan.CurrentDb.ToString(),
                    Vacuum = plan.Vacuum,
                    OmeroPyMinimum = plan.OmeroPyMinimum,
                    DatabaseSize = discovery.DatabaseSizeBytes,
                    DownloadUrl = plan.DownloadUrl,
                    Database = discovery.Database?.Name,
                },
            };
        }
        catch (Exception ex) when (ex is InvalidOperationException or SshConnectionException or HostKeyNotPinnedException or TimeoutException)
        {
            return new Plan { Error = "The plan needs the target: " + ex.Message, Target = target, Runbook = runbook };
        }
    }
}
