using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Rehearsals;

/// <summary>The preflight's "recent passing rehearsal" check (issue 18) for a product that rehearses: the target's newest passing rehearsal, read here.</summary>
public static class PassingRehearsal
{
    /// <summary>The target's newest rehearsal that succeeded, if any: its id and when it ended.</summary>
    public static async Task<(int Id, DateTimeOffset EndedAt)?> LatestAsync(AppDbContext db, int targetId, CancellationToken ct)
    {
        var latest = await db.Runs.AsNoTracking()
            .Where(r => r.TargetId == targetId && r.RunbookId.EndsWith(RehearsalRunbooks.Suffix) && r.State == Runs.RunState.Succeeded && r.EndedAt != null)
            .OrderByDescending(r => r.Id).Select(r => new { r.Id, r.EndedAt }).FirstOrDefaultAsync(ct);
        return latest is null ? null : (latest.Id, latest.EndedAt!.Value);
    }

    /// <summary>The check for <paramref name="target"/> as of <paramref name="now"/>.</summary>
    public static async Task<CheckResult> CheckAsync(AppDbContext db, Target target, DateTimeOffset now, CancellationToken ct)
    {
        var latest = await LatestAsync(db, target.Id, ct);
        return CommonChecks.RecentRehearsal(target.Id, target.RequirePassingRehearsalWithin, latest is { } l ? $"rehearsal {l.Id}" : null, latest?.EndedAt, now);
    }
}
