using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Scheduling;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Overview;

/// <summary>A target's last preflight: how many checks failed or warned, and when.</summary>
public sealed record PreflightVerdict(int Failed, int Warnings, DateTimeOffset At)
{
    public bool Passed => Failed == 0;
}

/// <summary>A target's active or newest run, with how many of its phases are done.</summary>
public sealed record RunSummary(int Id, RunState State, string FromVersion, string ToVersion, int PhasesDone, int PhaseCount, DateTimeOffset At, DateTimeOffset? ScheduledAt = null,
    string? ScheduledLocal = null)
{
    public bool IsActive => State is RunState.Planned or RunState.Running or RunState.WaitingForChecklist or RunState.Failed
        or RunState.NeedsAttention or RunState.RollingBack;
}

/// <summary>One row of the overview.</summary>
public sealed record TargetStatus(int Id, string Name, string Product, HostKeyState HostKey, string Installed, PreflightVerdict? Preflight, RunSummary? Run,
    HostKeyTrust Trust = HostKeyTrust.None, string? HostCertificateAuthority = null)
{
    /// <summary>A changed host key blocks every action until an Admin re-pins.</summary>
    public bool Blocked => HostKey == HostKeyState.Mismatch;
}

/// <summary>One line of the recent audit history.</summary>
public sealed record RecentEvent(long Id, DateTimeOffset At, string Actor, string Action, string? Subject, string? TargetName);

/// <summary>Everything the overview shows at one moment.</summary>
public sealed record OverviewSnapshot(IReadOnlyList<TargetStatus> Targets, IReadOnlyList<RecentEvent> RecentEvents);

/// <summary>
/// The landing page's picture of the fleet: per target its product, installed version, last preflight
/// and active or newest run (blocked targets first, then those with a run under way), and the newest
/// audit events. A handful of queries for the whole page, whatever the number of targets.
/// </summary>
public sealed class OverviewService(IServiceScopeFactory scopes)
{
    public const int RecentEventCount = 12;

    private static readonly PhaseState[] DoneStates = [PhaseState.Succeeded, PhaseState.MarkedDone, PhaseState.Skipped];

    public async Task<OverviewSnapshot> LoadAsync(CancellationToken ct = default)
    {
        // A scope per load: the page refreshes from a timer, beside whatever else the circuit does.
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();

        var targets = await db.Targets.AsNoTracking().ToListAsync(ct);
        // The newest run and preflight of each target (by id: ids grow with time).
        var runIds = await db.Runs.GroupBy(r => r.TargetId).Select(g => g.Max(r => r.Id)).ToListAsync(ct);
        var runs = await db.Runs.AsNoTracking().Where(r => runIds.Contains(r.Id)).ToDictionaryAsync(r => r.TargetId, ct);
        var progress = await db.RunPhases.Where(p => runIds.Contains(p.RunId) && !p.IsRollback)
            .GroupBy(p => p.RunId)
            .Select(g => new { RunId = g.Key, Count = g.Count(), Done = g.Count(p => DoneStates.Contains(p.State)) })
            .ToDictionaryAsync(p => p.RunId, ct);
        var preflightIds = await db.PreflightRuns.GroupBy(p => p.TargetId).Select(g => g.Max(p => p.Id)).ToListAsync(ct);
        var preflights = await db.PreflightRuns.AsNoTracking().Where(p => preflightIds.Contains(p.Id))
            .ToDictionaryAsync(p => p.TargetId, p => new PreflightVerdict(p.Failed, p.Warnings, p.At), ct);

        var rows = targets.Select(t =>
            {
                var run = runs.GetValueOrDefault(t.Id);
                var phases = run is null ? null : progress.GetValueOrDefault(run.Id);
                var summary = run is null
                    ? null
                    : new RunSummary(run.Id, run.State, run.FromVersion, run.ToVersion, phases?.Done ?? 0, phases?.Count ?? 0,
                        run.EndedAt ?? run.StartedAt ?? run.PlannedAt, run.State == RunState.Planned ? run.ScheduledAt : null,
                        run is { State: RunState.Planned, ScheduledAt: { } at } ? MaintenanceWindows.Of(null, t.TimeZone).Local(at) : null);
                return new TargetStatus(t.Id, t.Name, t.Product, t.HostKeyState, InstalledVersion(run, TargetService.LastDiscovery(t)),
                    preflights.GetValueOrDefault(t.Id), summary, t.HostKeyTrust, t.TrustsHostCertificateAuthority ? t.HostCertificateAuthority : null);
            })
            .OrderByDescending(t => t.Blocked)
            .ThenByDescending(t => t.Run?.IsActive == true)
            .ThenBy(t => t.Name, StringComparer.OrdinalIgnoreCase)
            .ToList();

        var names = targets.ToDictionary(t => t.Id, t => t.Name);
        var events = await db.AuditEvents.AsNoTracking().OrderByDescending(e => e.Id).Take(RecentEventCount)
            .Select(e => new { e.Id, e.At, e.Actor, e.Action, e.Subject, e.TargetId })
            .ToListAsync(ct);
        var recent = events
            .Select(e => new RecentEvent(e.Id, e.At, e.Actor, e.Action, e.Subject, e.TargetId is { } id ? names.GetValueOrDefault(id) : null))
            .ToList();
        return new OverviewSnapshot(rows, recent);
    }

    /// <summary>What discovery last saw, unless a run finished since: then what that run left installed.</summary>
    public static string InstalledVersion(Run? lastRun, DiscoveryRecord? discovery)
    {
        if (lastRun is { EndedAt: { } ended } run && (discovery is null || ended > discovery.At))
        {
            return run.State switch
            {
                RunState.Succeeded => run.ToVersion,
                RunState.RolledBack or RunState.Abandoned when run.StartedAt is null => discovery?.Installed ?? "—",
                RunState.RolledBack => run.FromVersion,
                _ => discovery?.Installed ?? "—",
            };
        }

        return discovery?.Installed ?? "—";
    }
}

public static class OverviewSetup
{
    public static WebApplicationBuilder AddOverview(this WebApplicationBuilder builder)
    {
        builder.Services.AddScoped<OverviewService>();
        builder.Services.AddScoped<RunList>();
        return builder;
    }
}
