using System.Security.Claims;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Core.Audit;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Audit;

/// <summary>What the audit page's filter offers: the actions recorded so far, their families, the targets' names.</summary>
public sealed record AuditChoices(IReadOnlyList<string> Actions, IReadOnlyList<string> Families, IReadOnlyDictionary<int, string> Targets);

/// <summary>
/// The audit page's service: pages of the history (filtered and keyset-paged in the database through
/// <see cref="AuditQuery"/>) and the chain check, each for a person whose role is checked now, in the
/// database (an open tab must not outlive a disabled account).
/// </summary>
public sealed class AuditHistory(AuditQuery query, AuditLog audit, AppDbContext db, UserAccess access)
{
    /// <summary>Up to <paramref name="size"/> + 1 matching events, newest first (the extra one says an older page exists).</summary>
    public async Task<List<AuditEvent>> PageAsync(ClaimsPrincipal actor, AuditFilter filter, int size, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Viewer);
        return await query.PageAsync(filter, size, ct);
    }

    public async Task<AuditChoices> ChoicesAsync(ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Viewer);
        var actions = await query.ActionsAsync(ct);
        var families = actions.Where(a => a.Contains('.', StringComparison.Ordinal)).Select(a => a[..(a.IndexOf('.', StringComparison.Ordinal) + 1)]).Distinct().ToList();
        var targets = await db.Targets.AsNoTracking().ToDictionaryAsync(t => t.Id, t => t.Name, ct);
        return new AuditChoices(actions, families, targets);
    }

    /// <summary>Checks the whole chain and records that it was checked (by whom, with the outcome).</summary>
    public async Task<AuditVerification> VerifyAsync(ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Viewer);
        var result = await audit.VerifyForAsync(actor, full: null, ct);
        await audit.RecordAsync(actor, "audit.verify", details: new { holds = result.Holds, events = result.Events, brokenAt = result.BrokenAt, result.HeadHash }, ct: ct);
        return result;
    }
}
