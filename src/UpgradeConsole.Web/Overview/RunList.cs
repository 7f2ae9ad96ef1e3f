using System.Security.Claims;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Core.Scheduling;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Overview;

/// <summary>The runs list's filter, as its address carries it (<c>/runs?target=3&amp;state=active</c>); dates are UTC days.</summary>
public sealed record RunFilter
{
    public int? TargetId { get; init; }

    /// <summary>A <see cref="RunState"/> name, or <c>active</c> for every run not finished.</summary>
    public string? State { get; init; }

    public string? RunbookId { get; init; }

    public DateOnly? From { get; init; }

    public DateOnly? To { get; init; }

    /// <summary>Keyset paging: only runs with a smaller id (older) than this.</summary>
    public int? Before { get; init; }

    public bool IsEmpty => TargetId is null && string.IsNullOrEmpty(State) && string.IsNullOrEmpty(RunbookId) && From is null && To is null;
}

/// <summary>A run as the list shows it: its phases counted, not loaded into the circuit.</summary>
public sealed record RunListRow(int Id, int TargetId, string RunbookId, string FromVersion, string ToVersion, RunState State,
    int PhasesDone, int Phases, DateTimeOffset PlannedAt, string PlannedBy, DateTimeOffset? StartedAt, DateTimeOffset? EndedAt,
    DateTimeOffset? ScheduledAt = null, string? ScheduledLocal = null, int? ChainIndex = null, int? ChainLength = null, string? ChainTo = null)
{
    /// <summary>"hop 1 of 2 → 24.03.0" for a hop of a chain of runs (ADR 0028), else null.</summary>
    public string? Chain => ChainIndex is null ? null : $"hop {ChainIndex} of {ChainLength} → {ChainTo}";
}

/// <summary>
/// The runs list: pages of runs, newest first, filtered and keyset-paged in the database, for a person
/// whose role is checked now (an open tab must not outlive a disabled account). It lives beside the
/// overview for now because the runs folder is being reworked; it reads runs, it changes nothing.
/// </summary>
public sealed class RunList(AppDbContext db, UserAccess access)
{
    /// <summary>Up to <paramref name="size"/> + 1 matching runs (the extra one says an older page exists).</summary>
    public async Task<List<RunListRow>> PageAsync(ClaimsPrincipal actor, RunFilter filter, int size, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Viewer);
        var query = db.Runs.AsNoTracking();
        if (filter.Before is { } before)
        {
            query = query.Where(r => r.Id < before);
        }

        if (filter.TargetId is { } target)
        {
            query = query.Where(r => r.TargetId == target);
        }

        if (filter.State == "active")
        {
            query = query.Where(r => r.ActiveTargetId != null);
        }
        else if (Enum.TryParse<RunState>(filter.State, out var state))
        {
            query = query.Where(r => r.State == state);
        }

        if (!string.IsNullOrEmpty(filter.RunbookId))
        {
            query = query.Where(r => r.RunbookId == filter.RunbookId);
        }

        // Time bounds are applied while reading (newest first, ids grow with time): SQLite cannot compare
        // DateTimeOffset in SQL. Phases are counted in SQL, never loaded.
        var from = filter.From?.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        var to = filter.To?.AddDays(1).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        var rows = query.OrderByDescending(r => r.Id).Select(r => new RunListRow(r.Id, r.TargetId, r.RunbookId, r.FromVersion, r.ToVersion, r.State,
            r.Phases.Count(p => !p.IsRollback && (p.State == PhaseState.Succeeded || p.State == PhaseState.MarkedDone || p.State == PhaseState.Skipped)),
            r.Phases.Count(p => !p.IsRollback), r.PlannedAt, r.PlannedBy, r.StartedAt, r.EndedAt, r.State == RunState.Planned ? r.ScheduledAt : null,
            null, r.ChainIndex, r.ChainLength, r.ChainTo));
        var page = new List<RunListRow>(size + 1);
        await foreach (var run in rows.AsAsyncEnumerable().WithCancellation(ct))
        {
            if ((to is { } t && run.PlannedAt >= new DateTimeOffset(t)) || (from is { } f && run.PlannedAt < new DateTimeOffset(f)))
            {
                continue;
            }

            page.Add(run);
            if (page.Count > size)
            {
                break;
            }
        }

        // A scheduled start is shown in its target's time zone, as the run page and the schedule form show it.
        var scheduledTargets = page.Where(r => r.ScheduledAt is not null).Select(r => r.TargetId).Distinct().ToList();
        if (scheduledTargets.Count > 0)
        {
            var zones = await db.Targets.AsNoTracking().Where(t => scheduledTargets.Contains(t.Id)).ToDictionaryAsync(t => t.Id, t => t.TimeZone, ct);
            for (var i = 0; i < page.Count; i++)
            {
                if (page[i].ScheduledAt is { } at)
                {
                    page[i] = page[i] with { ScheduledLocal = MaintenanceWindows.Of(null, zones.GetValueOrDefault(page[i].TargetId)).Local(at) };
                }
            }
        }

        return page;
    }

    public async Task<IReadOnlyDictionary<int, string>> TargetNamesAsync(ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Viewer);
        return await db.Targets.AsNoTracking().ToDictionaryAsync(t => t.Id, t => t.Name, ct);
    }
}
