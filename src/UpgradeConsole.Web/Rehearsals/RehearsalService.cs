using System.Security.Claims;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Rehearsals;

/// <summary>The latest rehearsal of a runbook on a target, as the plan page shows it.</summary>
public sealed record RehearsalSummary(int RunId, RunState State, DateTimeOffset? StartedAt, DateTimeOffset? EndedAt, string? DumpPath, long? DumpSize, string? Message,
    IReadOnlyList<RehearsedPhase> Phases)
{
    public TimeSpan? Duration => StartedAt is { } s && EndedAt is { } e ? e - s : null;

    public bool Passed => State == RunState.Succeeded;
}

/// <summary>One phase of a rehearsal: its outcome and how long it took.</summary>
public sealed record RehearsedPhase(string Key, string Title, PhaseState State, TimeSpan? Duration, string? Message);

/// <summary>
/// Starts rehearsals (issue 18, ADR 0022): a run of the runbook's rehearsal (<see cref="RehearsalRunbooks"/>), planned
/// from the target as it is now like the real run, started at once, driven by the same phase jobs, audited
/// (run.rehearse, then every phase). The person's role is checked again in the database at each call.
/// </summary>
public sealed class RehearsalService(AppDbContext db, PlanBuilder plans, RunbookCatalog runbooks, RunJob runJobs, AuditLog audit, TimeProvider clock, UserAccess access)
{
    /// <summary>
    /// Starts a rehearsal of <paramref name="runbookId"/> on the target. With <paramref name="reuseDumpWithin"/>, the
    /// newest verified dump of an earlier run of this target started within that time is restored instead of a fresh one.
    /// </summary>
    public async Task<RunResult> RehearseAsync(int targetId, string runbookId, string? toVersion, string? oauthClient, bool dataMigration, TimeSpan? reuseDumpWithin,
        ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Operator);
        var runbook = runbooks.Find(runbookId);
        if (runbook is null || runbook.IsRehearsal)
        {
            return RunResult.Fail("Unknown runbook.");
        }

        if (RehearsalRunbooks.Of(runbook) is not { } rehearsal)
        {
            return RunResult.Fail($"{runbook.Title} has no phase that can be rehearsed.");
        }

        if (await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.ActiveTargetId == targetId, ct) is { State: not RunState.Planned } active)
        {
            return RunResult.Fail($"Run {active.Id} is {active.State} on this target; rehearse before it starts or after it ends, not while it changes the server.");
        }

        if (await RunService.RunningRehearsalAsync(db, targetId, ct) is { } other)
        {
            return RunResult.Fail($"Rehearsal {other} is still running on this target; wait for it (or cancel its step).");
        }

        // The rehearsal of a planned run compares with that run's plan (its prediction, its versions and choices): a
        // change to the data since it was planned is then a finding. Without one, the target is planned afresh.
        var planned = await db.Runs.AsNoTracking().Include(r => r.Phases)
            .FirstOrDefaultAsync(r => r.ActiveTargetId == targetId && r.State == RunState.Planned && r.RunbookId == runbook.Id, ct);
        Plan? plan = null;
        if (planned is not null)
        {
            var optional = runbook.Phases.Where(p => p.Optional).Select(p => p.Key).ToHashSet(StringComparer.Ordinal);
            dataMigration = optional.Count == 0 || planned.Phases.Any(p => optional.Contains(p.Key) && p.State != PhaseState.Skipped);
        }
        else
        {
            plan = await plans.BuildAsync(targetId, runbook.Id, toVersion, oauthClient, ct, dataMigration);
            if (plan.Error is not null)
            {
                return RunResult.Fail(plan.Error);
            }
        }

        var now = clock.GetUtcNow();
        Run? borrowed = null;
        if (reuseDumpWithin is { } within)
        {
            var since = now - within;
            var candidates = await db.Runs.AsNoTracking()
                .Where(r => r.TargetId == targetId && r.BackupPath != null && r.BackupSha256 != null && !r.RunbookId.EndsWith(RehearsalRunbooks.Suffix))
                .OrderByDescending(r => r.Id).Take(20).ToListAsync(ct);
            borrowed = candidates.FirstOrDefault(r => r.StartedAt >= since);
        }

        var run = new Run
        {
            TargetId = targetId,
            RunbookId = rehearsal.Id,
            FromVersion = planned?.FromVersion ?? plan!.FromVersion ?? "",
            ToVersion = planned?.ToVersion ?? plan!.ToVersion,
            State = RunState.Running,
            // Never the target's active-run slot: a rehearsal changes nothing of production, a planned run waits beside it.
            ActiveTargetId = null,
            PlannedBy = actor.Identity?.Name ?? "",
            PlannedAt = now,
            StartedBy = actor.Identity?.Name,
            StartedAt = now,
            PlanJson = planned?.PlanJson ?? JsonSerializer.Serialize(plan!.Snapshot, plan.Snapshot.GetType(), JsonSerializerOptions.Web),
            OAuthClient = planned is not null ? planned.OAuthClient : string.IsNullOrWhiteSpace(oauthClient) ? null : oauthClient.Trim(),
            BackupPath = borrowed?.BackupPath,
            BackupSize = borrowed?.BackupSize,
            BackupSha256 = borrowed?.BackupSha256,
            Message = (borrowed is null ? "Rehearsing on a fresh dump" : $"Rehearsing on the verified dump of run {borrowed.Id}")
                + (planned is null ? ", against a plan made now." : $", against the plan of run {planned.Id}."),
            Phases = rehearsal.Phases.Select((p, i) => new RunPhase
            {
                Index = i,
                Key = p.Key,
                Title = p.Optional && !dataMigration ? p.Title + " (not chosen)" : p.Title,
                State = p.Optional && !dataMigration ? PhaseState.Skipped : PhaseState.Pending,
            }).ToList(),
        };
        db.Runs.Add(run);
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(actor, "run.rehearse", targetId, $"run {run.Id}", new
        {
            run = run.Id,
            rehearses = runbook.Id,
            plannedRun = planned?.Id,
            from = run.FromVersion,
            to = run.ToVersion,
            dump = borrowed is null ? "fresh" : $"run {borrowed.Id}: {borrowed.BackupPath}",
            reuseDumpWithin,
            dataMigration,
        }, ct);
        await runJobs.ScheduleAsync(run.Id, ct);
        return RunResult.Ok(run.Id) with { Plan = plan };
    }

    /// <summary>The latest rehearsal of <paramref name="runbookId"/> on the target (any outcome), or null.</summary>
    public Task<RehearsalSummary?> LatestAsync(int targetId, string runbookId, CancellationToken ct) => LatestAsync(db, runbooks, targetId, runbookId, passedOnly: false, ct);

    public static async Task<RehearsalSummary?> LatestAsync(AppDbContext db, RunbookCatalog runbooks, int targetId, string runbookId, bool passedOnly, CancellationToken ct)
    {
        var id = runbookId + RehearsalRunbooks.Suffix;
        var run = await db.Runs.AsNoTracking().Include(r => r.Phases)
            .Where(r => r.TargetId == targetId && r.RunbookId == id && (!passedOnly || r.State == RunState.Succeeded))
            .OrderByDescending(r => r.Id).FirstOrDefaultAsync(ct);
        if (run is null)
        {
            return null;
        }

        var rehearsal = runbooks.Find(id);
        return new RehearsalSummary(run.Id, run.State, run.StartedAt, run.EndedAt, run.BackupPath, run.BackupSize, run.Message,
            run.Phases.Where(p => !p.IsRollback).OrderBy(p => p.Index)
                .Select(p => new RehearsedPhase(p.Key, p.Title, p.State, p.StartedAt is { } s && p.EndedAt is { } e ? e - s : null, p.Message)).ToList());
    }

    /// <summary>
    /// The measured durations of the phases the latest passing rehearsal ran for real-run phases (same keys), for the
    /// real run's estimate.
    /// </summary>
    public static IReadOnlyDictionary<string, TimeSpan> Measured(RehearsalSummary? passing, RunbookDefinition runbook) =>
        passing is null
            ? new Dictionary<string, TimeSpan>()
            : passing.Phases.Where(p => p.State == PhaseState.Succeeded && p.Duration is not null && runbook.Phase(p.Key) is { Rehearse: not null })
                .ToDictionary(p => p.Key, p => p.Duration!.Value, StringComparer.Ordinal);
}
