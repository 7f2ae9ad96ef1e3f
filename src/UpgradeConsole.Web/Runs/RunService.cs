using System.Security.Claims;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Core.Scheduling;
using Hangfire;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Runs;

/// <summary>The outcome of an operator's action on a run.</summary>
public sealed record RunResult(bool Succeeded, string? Error = null, int? RunId = null)
{
    /// <summary>For a run just planned: the plan it was made from (what the plan page shows).</summary>
    public Plan? Plan { get; init; }

    public static RunResult Ok(int? id = null) => new(true, null, id);

    /// <summary>When the run's state machine refused the action: which action, and why (the error is its message).</summary>
    public RunRefusal? Refusal { get; init; }

    public static RunResult Fail(string error) => new(false, error);

    public static RunResult Refused(RunRefusal refusal) => new(false, refusal.Message) { Refusal = refusal };
}

/// <summary>What the run page shows: the run, its target's name, its runbook, and what the page needs besides.</summary>
public sealed record RunView(Run Run, string TargetName, RunbookDefinition? Runbook, TimeSpan? ExpectedDuration, IReadOnlyList<CheckResult> FailingChecks, MaintenanceWindows Windows)
{
    /// <summary>Each host of the run's phases on many hosts (empty for a run on one host).</summary>
    public IReadOnlyList<Runbooks.RunHostStep> Hosts { get; init; } = [];

    /// <summary>For a hop of a chain of runs: the run of the next hop, once the chain's job created it.</summary>
    public int? NextChainRunId { get; init; }
}

/// <summary>
/// Plans, approves, starts and steers runs; every action is checked against the run's state and audited.
/// Every action for a person first checks, in the database, the role they hold now (<see cref="UserAccess"/>):
/// a run page open for hours, or a token, must not outlive a demotion (Operator acts, Admin overrides).
/// </summary>
public sealed class RunService(AppDbContext db, RunJob runJobs, PlanBuilder plans, RunbookCatalog runbooks, TargetConnections connections, AuditLog audit, TimeProvider clock, IBackgroundJobClient jobs, UserAccess access)
{
    /// <summary>How far ahead a start may be scheduled.</summary>
    public static readonly TimeSpan LongestSchedule = TimeSpan.FromDays(366);

    /// <summary>The runbook a run follows (null if it is no longer known).</summary>
    public RunbookDefinition? RunbookOf(Run run) => runbooks.Find(run.RunbookId);

    public Task<Run?> FindAsync(int id, CancellationToken ct) =>
        db.Runs.AsNoTracking().Include(r => r.Phases).Include(r => r.Checklist).FirstOrDefaultAsync(r => r.Id == id, ct);

    /// <summary>The run page's data for <paramref name="actor"/> (any role held now), or null for an unknown run.</summary>
    public async Task<RunView?> ViewAsync(int id, ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Viewer);
        if (await FindAsync(id, ct) is not { } run)
        {
            return null;
        }

        var target = await db.Targets.IgnoreQueryFilters().AsNoTracking().Where(t => t.Id == run.TargetId)
            .Select(t => new { t.Name, t.MaintenanceWindows, t.TimeZone }).FirstOrDefaultAsync(ct);
        var runbook = RunbookOf(run);
        IReadOnlyList<CheckResult> failing = [];
        if (RunStateMachine.Check(RunAction.OverridePreflight, run, runbook, actor.Identity?.Name) is null)
        {
            var latest = await db.Set<PreflightRun>().AsNoTracking().Where(p => p.TargetId == run.TargetId).OrderByDescending(p => p.Id).FirstOrDefaultAsync(ct);
            failing = latest is null ? [] : PreflightService.Checks(latest).Where(c => c.Status == CheckStatus.Fail).ToList();
        }

        var expected = RunStateMachine.IsMoving(run.State) ? await plans.ExpectedDurationAsync(run.RunbookId, ct) : null;
        var hosts = await db.Set<Runbooks.RunHostStep>().AsNoTracking().Where(h => h.RunId == id).ToListAsync(ct);
        var next = await Chains.RunChain.NextRunIdAsync(db.Runs, run, ct);
        return new RunView(run, target?.Name ?? "?", runbook, expected, failing, MaintenanceWindows.Of(target?.MaintenanceWindows, target?.TimeZone)) { Hosts = hosts, NextChainRunId = next };
    }

    public Task<Run?> ActiveRunAsync(int targetId, CancellationToken ct) =>
        db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.ActiveTargetId == targetId, ct);

    /// <summary>
    /// The id of a rehearsal still moving on the target (its copy and steps are there), or null. A rehearsal holds no
    /// active-run slot (ADR 0022), so a real run's start asks here: the two must not run on one server at once.
    /// </summary>
    public static Task<int?> RunningRehearsalAsync(AppDbContext db, int targetId, CancellationToken ct) =>
        db.Runs.AsNoTracking()
            .Where(r => r.TargetId == targetId && r.RunbookId.EndsWith(RehearsalRunbooks.Suffix) && (r.State == RunState.Running || r.State == RunState.RollingBack))
            .OrderBy(r => r.Id).Select(r => (int?)r.Id).FirstOrDefaultAsync(ct);

    /// <summary>The refusal of a real run's start while rehearsal <paramref name="rehearsalId"/> runs on its target.</summary>
    public static RunRefusal RehearsalRunning(int rehearsalId, string what = "This run") =>
        new(RunAction.Start, RefusalReason.RehearsalRunning,
            $"{what} cannot start while rehearsal {rehearsalId} is running on this target (it uses the server's database and disk); start it once the rehearsal has ended, or cancel the rehearsal's step.");

    /// <summary>The plan page's preview for <paramref name="actor"/> (Operator held now): nothing is recorded.</summary>
    public async Task<Plan> PreviewAsync(int targetId, string runbookId, string? toVersion, string? oauthClient, bool dataMigration, ClaimsPrincipal actor, bool chain = false, CancellationToken ct = default)
    {
        await access.RequireAsync(actor, Roles.Operator);
        return await plans.BuildAsync(targetId, runbookId, toVersion, oauthClient, ct, dataMigration, chain);
    }

    /// <summary>Whether <paramref name="actor"/> is an Admin now (the plan page offers overrides to Admins only).</summary>
    public async Task<bool> IsAdminNowAsync(ClaimsPrincipal actor) => await access.CurrentRoleAsync(actor) == Roles.Admin;

    /// <summary>
    /// Records a planned run (its plan snapshot included). One active run per target: the database refuses a second.
    /// <paramref name="chain"/>: a version further than one hop away is planned as a chain of runs, this run its first hop
    /// (ADR 0028). <paramref name="link"/>: the next hop of a chain, planned by <see cref="Chains.ChainJob"/> with the
    /// approval of the chain's first hop; the cluster must be on the version the hop starts from.
    /// </summary>
    public async Task<RunResult> PlanAsync(int targetId, string runbookId, string? toVersion, string? oauthClient, IReadOnlyDictionary<string, string> overrides, ClaimsPrincipal actor, CancellationToken ct, bool dataMigration = false,
        Runbooks.RolloutChoice? rollout = null, bool chain = false, Chains.ChainLink? link = null)
    {
        await access.RequireAsync(actor, Roles.Operator);
        var runbook = runbooks.Find(runbookId);
        if (runbook is null)
        {
            return RunResult.Fail("Unknown runbook.");
        }

        if (overrides.Count > 0 && await access.CurrentRoleAsync(actor) != Roles.Admin)
        {
            return RunResult.Fail("Only an Admin may override a failing preflight check.");
        }

        if (overrides.Any(o => string.IsNullOrWhiteSpace(o.Value)))
        {
            return RunResult.Fail("Every override needs a written reason.");
        }

        if (overrides.Keys.Select(runbook.RefuseOverride).FirstOrDefault(r => r is not null) is { } never)
        {
            return RunResult.Fail(never);
        }

        if (await ActiveRunAsync(targetId, ct) is { } active)
        {
            return RunResult.Fail($"Run {active.Id} is already active on this target ({active.State}); finish, roll back or abandon it first.");
        }

        var plan = await plans.BuildAsync(targetId, runbookId, toVersion, oauthClient, ct, dataMigration, chain && link is null);
        if (plan.Error is not null)
        {
            return RunResult.Fail(plan.Error);
        }

        if (link is not null && (plan.FromVersion != link.Hop.From || plan.ToVersion != link.Hop.To))
        {
            return RunResult.Fail($"The cluster is on {plan.FromVersion ?? "no readable version"}, not on {link.Hop.From} where hop {link.Index} of the chain ({link.Hop}) starts; nothing was changed for it. " +
                "Look at the cluster's hosts, then plan the rest of the chain again.");
        }

        if (rollout is { IsEmpty: false })
        {
            var (chosen, rolloutError) = rollout.ApplyTo(plan.Snapshot);
            if (rolloutError is not null)
            {
                return RunResult.Fail(rolloutError);
            }

            plan = plan with { Snapshot = chosen! };
        }

        // The last preflight's failing checks stop the plan unless an Admin overrode each (the run checks again first).
        if (plan.Preflight is not null)
        {
            var unresolved = PreflightService.Checks(plan.Preflight)
                .Where(c => c.Status == CheckStatus.Fail && c.Id != CommonChecks.ActiveRun && runbook.Requires(c.Id) && !overrides.ContainsKey(c.Id)).ToList();
            if (unresolved.Count > 0)
            {
                return RunResult.Fail($"The last preflight has failing checks: {string.Join("; ", unresolved.Select(c => c.Title))}. " +
                    "Fix them and run the preflight again, or (an Admin) override each with a written reason.");
            }
        }

        var target = await db.Targets.AsNoTracking().FirstAsync(t => t.Id == targetId, ct);
        var run = new Run
        {
            TargetId = targetId,
            RunbookId = runbookId,
            FromVersion = plan.FromVersion ?? "",
            ToVersion = plan.ToVersion,
            State = RunState.Planned,
            ActiveTargetId = targetId,
            PlannedBy = actor.Identity?.Name ?? "",
            PlannedAt = clock.GetUtcNow(),
            RequiresApproval = target.RequireApproval,
            PlanJson = JsonSerializer.Serialize(plan.Snapshot, plan.Snapshot.GetType(), JsonSerializerOptions.Web),
            OverridesJson = JsonSerializer.Serialize(overrides, JsonSerializerOptions.Web),
            OAuthClient = string.IsNullOrWhiteSpace(oauthClient) ? null : oauthClient.Trim(),
            Phases = plan.Phases.Select((p, i) => new RunPhase
            {
                Index = i,
                Key = p.Definition.Key,
                Title = p.Chosen ? p.Definition.Title : p.Definition.Title + " (not chosen)",
                State = p.Chosen ? PhaseState.Pending : PhaseState.Skipped,
            }).ToList(),
            Checklist = runbook.Checklist.Select((text, i) => new RunChecklistItem { Index = i, Text = text }).ToList(),
        };
        if (link is not null)
        {
            Chains.RunChain.Link(run, link);
            run.ApprovedBy = link.ApprovedBy;
            run.ApprovedAt = link.ApprovedAt;
        }
        else if (plan.Chain.Count > 1)
        {
            Chains.RunChain.Link(run, Chains.ChainLink.First(plan.Chain));
        }

        db.Runs.Add(run);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException)
        {
            return RunResult.Fail("Another run became active on this target meanwhile; only one run may be active per target.");
        }

        await audit.RecordAsync(actor, "run.plan", targetId, $"run {run.Id}", rollout is { IsEmpty: false }
            ? new { run = run.Id, runbook = runbookId, from = run.FromVersion, to = run.ToVersion, overrides, oauthClient = run.OAuthClient, dataMigration, batchSize = rollout.BatchSize, failuresAllowed = rollout.FailuresAllowed }
            : new { run = run.Id, runbook = runbookId, from = run.FromVersion, to = run.ToVersion, overrides, oauthClient = run.OAuthClient, dataMigration }, ct);
        if (link is null && run.ChainId is not null)
        {
            await audit.RecordAsync(actor, "run.chain-plan", targetId, $"run {run.Id}",
                new { run = run.Id, chain = run.ChainId, to = run.ChainTo, hops = plan.Chain.Select(h => h.ToString()).ToList() }, ct);
        }

        return RunResult.Ok(run.Id) with { Plan = plan };
    }

    public Task<RunResult> ApproveAsync(int runId, ClaimsPrincipal actor, CancellationToken ct) => ChangeAsync(runId, actor, "run.approve", null, run =>
    {
        if (Check(RunAction.Approve, run, actor) is { } refusal)
        {
            return refusal;
        }

        run.ApprovedBy = actor.Identity?.Name;
        run.ApprovedAt = clock.GetUtcNow();
        return null;
    }, schedule: false, ct);

    /// <summary>The maintenance windows of the run's target (no window: any time).</summary>
    public async Task<MaintenanceWindows> WindowsOfAsync(int targetId, CancellationToken ct)
    {
        var target = await db.Targets.IgnoreQueryFilters().AsNoTracking().Where(t => t.Id == targetId)
            .Select(t => new { t.MaintenanceWindows, t.TimeZone }).FirstOrDefaultAsync(ct);
        return MaintenanceWindows.Of(target?.MaintenanceWindows, target?.TimeZone);
    }

    /// <summary>Starts a planned run now: inside one of its target's maintenance windows when it has any. A schedule it had is dropped.</summary>
    public async Task<RunResult> StartAsync(int runId, ClaimsPrincipal actor, CancellationToken ct)
    {
        var targetId = await db.Runs.AsNoTracking().Where(r => r.Id == runId).Select(r => (int?)r.TargetId).FirstOrDefaultAsync(ct);
        var windows = targetId is { } t ? await WindowsOfAsync(t, ct) : MaintenanceWindows.Of(null, null);
        var rehearsal = targetId is { } target ? await RunningRehearsalAsync(db, target, ct) : null;
        string? droppedJob = null;
        var result = await ChangeAsync(runId, actor, "run.start", null, run =>
        {
            if (Check(RunAction.Start, run, actor) is { } refusal)
            {
                return refusal;
            }

            if (rehearsal is { } rehearsing)
            {
                return RehearsalRunning(rehearsing);
            }

            var now = clock.GetUtcNow();
            if (windows.Refusal(now, "This run may start") is { } closed)
            {
                return new RunRefusal(RunAction.Start, RefusalReason.OutsideMaintenanceWindow, closed);
            }

            droppedJob = run.ScheduleJobId;
            run.State = RunState.Running;
            run.StartedBy = actor.Identity?.Name;
            run.StartedAt = now;
            run.ScheduleJobId = null;
            return null;
        }, schedule: true, ct);
        DeleteJob(result.Succeeded ? droppedJob : null);
        return result;
    }

    /// <summary>
    /// Schedules a planned run to start at <paramref name="at"/> (a Hangfire scheduled job), or moves its
    /// schedule. Allowed to whoever may start it now (approval given, not the approver), at a time inside one
    /// of the target's maintenance windows. Audited: run.schedule, or run.reschedule with the old time.
    /// </summary>
    public async Task<RunResult> ScheduleAsync(int runId, DateTimeOffset at, ClaimsPrincipal actor, CancellationToken ct)
    {
        var targetId = await db.Runs.AsNoTracking().Where(r => r.Id == runId).Select(r => (int?)r.TargetId).FirstOrDefaultAsync(ct);
        if (targetId is null)
        {
            return RunResult.Fail("No such run.");
        }

        var windows = await WindowsOfAsync(targetId.Value, ct);
        var now = clock.GetUtcNow();
        DateTimeOffset? previous = null;
        string? previousJob = null;
        var result = await ChangeAsync(runId, actor, "run.schedule", null, run =>
        {
            if (Check(RunAction.Start, run, actor) is { } refusal)
            {
                return refusal with { Message = "It cannot be scheduled: " + LowerFirst(refusal.Message) };
            }

            if (at <= now)
            {
                return new RunRefusal(RunAction.Start, RefusalReason.BadScheduleTime, $"{windows.Local(at)} has passed; choose a time in the future, or start the run now.");
            }

            if (at > now + LongestSchedule)
            {
                return new RunRefusal(RunAction.Start, RefusalReason.BadScheduleTime, "A run can be scheduled at most a year ahead.");
            }

            if (windows.Refusal(at, "This run may start") is { } closed)
            {
                return new RunRefusal(RunAction.Start, RefusalReason.OutsideMaintenanceWindow, closed);
            }

            previous = run.ScheduledAt;
            previousJob = run.ScheduleJobId;
            run.ScheduledAt = at.ToUniversalTime();
            run.ScheduledBy = actor.Identity?.Name;
            run.ScheduleJobId = null;
            return null;
        }, schedule: false, ct, details: () => new { at = at.ToUniversalTime(), local = windows.Local(at), previous, windows = windows.Describe() },
            actionName: () => previous is null ? "run.schedule" : "run.reschedule");
        if (!result.Succeeded)
        {
            return result;
        }

        DeleteJob(previousJob);
        var due = at.ToUniversalTime();
        var jobId = jobs.Schedule<ScheduledStartJob>(j => j.StartAsync(runId, due.ToUnixTimeMilliseconds(), CancellationToken.None), due);
        await db.Runs.Where(r => r.Id == runId).ExecuteUpdateAsync(u => u.SetProperty(r => r.ScheduleJobId, jobId), ct);
        return result;
    }

    /// <summary>Drops a planned run's schedule: it waits for a person to start it again. Audited (run.unschedule).</summary>
    public async Task<RunResult> UnscheduleAsync(int runId, string? reason, ClaimsPrincipal actor, CancellationToken ct)
    {
        DateTimeOffset? previous = null;
        string? previousJob = null;
        var result = await ChangeAsync(runId, actor, "run.unschedule", null, run =>
        {
            if (!RunStateMachine.Allows(run.State, RunAction.Start))
            {
                return new RunRefusal(RunAction.Start, RefusalReason.NotInThisState, $"The run is {run.State}; only a planned run has a schedule to cancel.");
            }

            if (run.ScheduledAt is null)
            {
                return new RunRefusal(RunAction.Start, RefusalReason.NotScheduled, "This run is not scheduled.");
            }

            previous = run.ScheduledAt;
            previousJob = run.ScheduleJobId;
            run.ScheduledAt = null;
            run.ScheduledBy = null;
            run.ScheduleJobId = null;
            return null;
        }, schedule: false, ct, details: () => new { previous, reason = string.IsNullOrWhiteSpace(reason) ? null : reason.Trim() });
        DeleteJob(result.Succeeded ? previousJob : null);
        return result;
    }

    /// <summary>
    /// The scheduled start, when its job is due (<see cref="ScheduledStartJob"/>): only if the run still waits
    /// for this very schedule. Checked again now: the state, the approval, the window, and that whoever scheduled it
    /// may still start runs (<paramref name="schedulerMayOperate"/>). A refusal drops the schedule and says why
    /// (audited as run.schedule-refused); the run stays planned. The preflight runs again as the run's first phase.
    /// </summary>
    public async Task<RunResult> StartScheduledAsync(int runId, DateTimeOffset due, Func<string, Task<bool>> schedulerMayOperate, CancellationToken ct)
    {
        var run = await db.Runs.Include(r => r.Phases).Include(r => r.Checklist).FirstOrDefaultAsync(r => r.Id == runId, ct);
        if (run is null || run.State != RunState.Planned || run.ScheduledAt is not { } at || at.ToUnixTimeMilliseconds() != due.ToUnixTimeMilliseconds())
        {
            return RunResult.Fail("The run no longer waits for this schedule.");
        }

        var windows = await WindowsOfAsync(run.TargetId, ct);
        var now = clock.GetUtcNow();
        var scheduler = run.ScheduledBy ?? "";
        var refusal = RunStateMachine.Check(RunAction.Start, run, RunbookOf(run), scheduler)?.Message
            ?? (await RunningRehearsalAsync(db, run.TargetId, ct) is { } rehearsal ? RehearsalRunning(rehearsal, "The scheduled run").Message : null)
            ?? (await schedulerMayOperate(scheduler) ? null : $"{scheduler} may no longer start runs (disabled, or no longer an Operator or Admin).")
            ?? windows.Refusal(now, "The scheduled start was due, but this run may start");
        if (refusal is not null)
        {
            run.Message = $"Not started at its scheduled time {windows.Local(at)}: {refusal}";
            run.ScheduledAt = null;
            run.ScheduleJobId = null;
            run.Version = Guid.NewGuid();
            await db.SaveChangesAsync(ct);
            await audit.RecordAsync("system", "run.schedule-refused", run.TargetId, $"run {run.Id}", new { run = run.Id, scheduledAt = at, scheduledBy = scheduler, reason = refusal }, ct);
            return RunResult.Fail(run.Message);
        }

        run.State = RunState.Running;
        run.StartedBy = scheduler;
        run.StartedAt = now;
        run.ScheduleJobId = null;
        run.Message = $"Started at its scheduled time {windows.Local(at)}.";
        run.Version = Guid.NewGuid();
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateConcurrencyException)
        {
            return RunResult.Fail("The run changed meanwhile.");
        }

        await audit.RecordAsync("system", "run.start", run.TargetId, $"run {run.Id}", new { run = run.Id, scheduled = true, scheduledAt = at, scheduledBy = scheduler, state = run.State.ToString() }, ct);
        await runJobs.ScheduleAsync(run.Id, ct);
        return RunResult.Ok(run.Id);
    }

    private void DeleteJob(string? jobId)
    {
        if (jobId is not null)
        {
            // The job would find the schedule gone and do nothing; deleting it keeps /jobs truthful.
            jobs.Delete(jobId);
        }
    }

    private static string LowerFirst(string text) => text.Length == 0 ? text : char.ToLowerInvariant(text[0]) + text[1..];

    /// <summary>
    /// Runs a failed phase again. A non-idempotent one only with an explicit confirmation. With <paramref name="host"/>,
    /// a phase on many hosts runs that one failed or unreachable host alone (the rest of the rollout waits for a retry
    /// of the whole phase); the phase is done once every one of its hosts is.
    /// </summary>
    public async Task<RunResult> RetryAsync(int runId, bool confirmNotIdempotent, ClaimsPrincipal actor, CancellationToken ct, string? host = null)
    {
        host = string.IsNullOrWhiteSpace(host) ? null : host.Trim();
        // The rows are read before ChangeAsync checks the role (its check is the one that counts; nothing read here is shown).
        IReadOnlyList<Runbooks.RunHostStep> hosts = host is null ? [] : await db.Set<Runbooks.RunHostStep>().AsNoTracking().Where(h => h.RunId == runId).ToListAsync(ct);

        return await ChangeAsync(runId, actor, "run.retry", null, run =>
        {
            if (Check(RunAction.Retry, run, actor, confirmNotIdempotent) is { } refusal)
            {
                return refusal;
            }

            var phase = StoppedPhase(run)!;
            if (host is not null)
            {
                var ofPhase = hosts.Where(h => h.PhaseKey == phase.Key).ToList();
                var row = ofPhase.FirstOrDefault(h => h.Host == host);
                if (ofPhase.Count == 0)
                {
                    return new RunRefusal(RunAction.Retry, RefusalReason.NotInThisState, $"The phase \"{phase.Title}\" does not run on several hosts: retry the whole phase.");
                }

                if (row is null)
                {
                    return new RunRefusal(RunAction.Retry, RefusalReason.NotInThisState, $"{host} is not a host of the phase \"{phase.Title}\" (its hosts: {string.Join(", ", ofPhase.OrderBy(h => h.Index).Select(h => h.Host))}).");
                }

                if (!row.IsFailure)
                {
                    return new RunRefusal(RunAction.Retry, RefusalReason.NotInThisState, $"{host} is {row.State.ToString().ToLowerInvariant()} in the phase \"{phase.Title}\": only a failed or unreachable host is retried alone.");
                }
            }

            NextAttempt(run, phase, host);
            return null;
        }, schedule: true, ct, confirmed: confirmNotIdempotent, actionName: host is null ? null : () => "run.retry-host", host: host);
    }

    /// <summary>Sets a stopped phase up for its next attempt (a new step on the target; on one host alone when <paramref name="host"/> is given) and the run moving again.</summary>
    private static void NextAttempt(Run run, RunPhase phase, string? host = null)
    {
        phase.State = PhaseState.Pending;
        phase.Attempt++;
        phase.StepId = null;
        phase.LogOffset = 0;
        phase.Message = null;
        phase.ExitCode = null;
        phase.RetryHost = host;
        run.State = RunStateMachine.Resumed(phase);
    }

    public Task<RunResult> MarkDoneAsync(int runId, string reason, ClaimsPrincipal actor, CancellationToken ct) => ChangeAsync(runId, actor, "run.mark-done", reason, run =>
    {
        if (Check(RunAction.MarkDone, run, actor) is { } refusal)
        {
            return refusal;
        }

        var phase = StoppedPhase(run)!;
        phase.State = PhaseState.MarkedDone;
        phase.Message = $"Marked done by {actor.Identity?.Name}: {reason}";
        phase.EndedAt = clock.GetUtcNow();
        run.State = RunStateMachine.Resumed(phase);
        return null;
    }, schedule: true, ct);

    /// <summary>
    /// An Admin lets a failed preflight phase pass: each failing check it names is overridden with a
    /// written reason (audited), and the preflight runs again with those overrides. Only checks that
    /// fail in the target's latest preflight can be overridden.
    /// </summary>
    public async Task<RunResult> OverridePreflightAsync(int runId, IReadOnlyDictionary<string, string> overrides, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Operator);
        if (await access.CurrentRoleAsync(actor) != Roles.Admin)
        {
            return RunResult.Fail(PreflightGate.OverrideNeedsAdmin);
        }

        if (overrides.Count == 0 || overrides.Any(o => string.IsNullOrWhiteSpace(o.Value)))
        {
            return RunResult.Fail("Name each failing check to override, each with a written reason.");
        }

        var run = await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == runId, ct);
        if (run is null)
        {
            return RunResult.Fail("No such run.");
        }

        var latest = await db.Set<PreflightRun>().AsNoTracking().Where(p => p.TargetId == run.TargetId).OrderByDescending(p => p.Id).FirstOrDefaultAsync(ct);
        var failing = latest is null ? [] : PreflightService.Checks(latest).Where(c => c.Status == CheckStatus.Fail).Select(c => c.Id).ToHashSet(StringComparer.Ordinal);
        if (overrides.Keys.FirstOrDefault(k => !failing.Contains(k)) is { } notFailing)
        {
            return RunResult.Fail($"The check '{notFailing}' does not fail in the latest preflight of this target; only failing checks can be overridden.");
        }

        if (runbooks.Find(run.RunbookId) is { } overridden && overrides.Keys.Select(overridden.RefuseOverride).FirstOrDefault(r => r is not null) is { } never)
        {
            return RunResult.Fail(never);
        }

        var trimmed = overrides.ToDictionary(o => o.Key, o => o.Value.Trim(), StringComparer.Ordinal);
        return await ChangeAsync(runId, actor, "run.preflight-override", string.Join("; ", trimmed.Select(o => $"{o.Key}: {o.Value}")), change =>
        {
            if (Check(RunAction.OverridePreflight, change, actor) is { } refusal)
            {
                return refusal;
            }

            var phase = StoppedPhase(change)!;
            var merged = JsonSerializer.Deserialize<Dictionary<string, string>>(change.OverridesJson, JsonSerializerOptions.Web) ?? [];
            foreach (var (check, reason) in trimmed)
            {
                merged[check] = $"{reason} (by {actor.Identity?.Name})";
            }

            change.OverridesJson = JsonSerializer.Serialize(merged, JsonSerializerOptions.Web);
            NextAttempt(change, phase);
            return null;
        }, schedule: true, ct);
    }

    /// <summary>
    /// Rolls back what the run changed. Before the point of no return: the env file, the previous
    /// version, the service. After it: also the database, from this run's verified dump.
    /// </summary>
    public Task<RunResult> RollbackAsync(int runId, string reason, ClaimsPrincipal actor, CancellationToken ct) => ChangeAsync(runId, actor, "run.rollback", reason, run =>
    {
        if (Check(RunAction.Rollback, run, actor) is { } refusal)
        {
            return refusal;
        }

        // The runbook says what undoes each phase that started, and in which order.
        var (steps, noRollback) = RollbackPlan.For(run, RunbookOf(run) ?? throw new InvalidOperationException($"Unknown runbook {run.RunbookId}."));
        if (noRollback is not null)
        {
            return noRollback;
        }

        var next = run.Phases.Max(p => p.Index) + 1;
        run.Phases.AddRange(steps.Select((s, i) => new RunPhase { Index = next + i, Key = s.Key, Title = s.Title, IsRollback = true, State = PhaseState.Pending }));
        run.State = RunState.RollingBack;
        if (steps.Count == 0)
        {
            run.State = RunState.RolledBack;
            run.ActiveTargetId = null;
            run.EndedAt = clock.GetUtcNow();
        }

        return null;
    }, schedule: true, ct);

    public Task<RunResult> AbandonAsync(int runId, string reason, ClaimsPrincipal actor, CancellationToken ct) => ChangeAsync(runId, actor, "run.abandon", reason, run =>
    {
        if (Check(RunAction.Abandon, run, actor) is { } refusal)
        {
            return refusal;
        }

        run.State = RunState.Abandoned;
        run.ActiveTargetId = null;
        run.EndedAt = clock.GetUtcNow();
        run.Message = $"Abandoned by {actor.Identity?.Name}: {reason}";
        return null;
    }, schedule: false, ct);

    /// <summary>Stops the running remote step (its whole process group); the phase then fails and waits for a decision.</summary>
    public async Task<RunResult> CancelAsync(int runId, string reason, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Operator);
        var run = await db.Runs.Include(r => r.Phases).FirstOrDefaultAsync(r => r.Id == runId, ct);
        if (run is null)
        {
            return RunResult.Fail("No step of this run is running.");
        }

        if (Check(RunAction.Cancel, run, actor) is { } notRunning)
        {
            return RunResult.Refused(notRunning);
        }

        var phase = run.Phases.FirstOrDefault(p => p.State == PhaseState.Running && p.StepId is not null);
        await audit.RecordAsync(actor, "run.cancel", run.TargetId, $"run {run.Id}", new { run = run.Id, phase = phase?.Key, reason }, ct);
        if (phase is null)
        {
            return RunResult.Refused(new RunRefusal(RunAction.Cancel, RefusalReason.RunsInsideTheDashboard, "The current phase runs inside the dashboard and ends by itself in a moment."));
        }

        var target = await db.Targets.AsNoTracking().FirstAsync(t => t.Id == run.TargetId, ct);
        var engine = new RemoteStepEngine(await connections.ShellAsync(target, ct));
        await engine.CancelAsync(new StepLocation(target.RunsDirectory, run.RemoteRunId, phase.StepId!), ct);
        return RunResult.Ok(run.Id);
    }

    public async Task<RunResult> TickAsync(int runId, int itemId, bool done, string? note, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Operator);
        var run = await db.Runs.Include(r => r.Phases).Include(r => r.Checklist).FirstOrDefaultAsync(r => r.Id == runId, ct);
        var item = run?.Checklist.FirstOrDefault(c => c.Id == itemId);
        if (run is null || item is null)
        {
            return RunResult.Fail("No such checklist item.");
        }

        if (Check(RunAction.TickChecklist, run, actor) is { } closed)
        {
            return RunResult.Refused(closed);
        }

        var continuing = false;
        item.Done = done;
        item.DoneBy = done ? actor.Identity?.Name : null;
        item.DoneAt = done ? clock.GetUtcNow() : null;
        item.Note = string.IsNullOrWhiteSpace(note) ? item.Note : note.Trim();
        if (run.Checklist.All(c => c.Done))
        {
            // The runbook's manual phase; a run whose runbook has none (or an older plan) completes the phase that waits for people.
            var manual = RunbookOf(run)?.ChecklistPhase;
            var phase = run.Phases.FirstOrDefault(p => !p.IsRollback && manual is not null && p.Key == manual.Key)
                ?? run.Phases.Where(p => !p.IsRollback && p.State == PhaseState.Running).OrderBy(p => p.Index).LastOrDefault();
            if (phase is not null)
            {
                phase.State = PhaseState.Succeeded;
                phase.EndedAt = clock.GetUtcNow();
            }

            if (phase is not null && run.Phases.Any(p => !p.IsRollback && p.Index > phase.Index && p.State == PhaseState.Pending))
            {
                // A checklist before other phases (Backend.AI: the changelog read, the downtime announced): the run goes on.
                run.State = RunState.Running;
                run.Message = "Every manual check is ticked; the run goes on.";
                continuing = true;
            }
            else
            {
                run.State = RunState.Succeeded;
                run.ActiveTargetId = null;
                run.EndedAt = clock.GetUtcNow();
                run.Message = "Succeeded; every manual check is ticked.";
            }
        }

        run.Version = Guid.NewGuid();
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(actor, "run.checklist", run.TargetId, $"run {run.Id}", new { run = run.Id, item = item.Text, done, note = item.Note, runState = run.State.ToString() }, ct);
        if (continuing)
        {
            await runJobs.ScheduleAsync(run.Id, ct);
        }

        Chains.ChainJob.EnqueueAfter(jobs, run);

        return RunResult.Ok(run.Id);
    }

    private static RunPhase? StoppedPhase(Run run) => RunStateMachine.StoppedPhase(run);

    /// <summary>The state machine's answer for this run, its runbook and this person.</summary>
    private RunRefusal? Check(RunAction action, Run run, ClaimsPrincipal actor, bool confirmed = false) =>
        RunStateMachine.Check(action, run, RunbookOf(run), actor.Identity?.Name, confirmed);

    private async Task<RunResult> ChangeAsync(int runId, ClaimsPrincipal actor, string action, string? reason, Func<Run, RunRefusal?> change, bool schedule, CancellationToken ct, bool? confirmed = null,
        Func<object>? details = null, Func<string>? actionName = null, string? host = null)
    {
        await access.RequireAsync(actor, Roles.Operator);
        if (reason is not null && string.IsNullOrWhiteSpace(reason))
        {
            return RunResult.Fail("Give a reason: it goes into the audit history.");
        }

        var run = await db.Runs.Include(r => r.Phases).Include(r => r.Checklist).FirstOrDefaultAsync(r => r.Id == runId, ct);
        if (run is null)
        {
            return RunResult.Fail("No such run.");
        }

        var stopped = StoppedPhase(run);
        var stoppedPhase = stopped is null ? null : new { stopped.Key, stopped.Attempt, state = stopped.State.ToString() };
        if (change(run) is { } refusal)
        {
            return RunResult.Refused(refusal);
        }

        run.Version = Guid.NewGuid();
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateConcurrencyException)
        {
            return RunResult.Fail("The run changed meanwhile; reload and try again.");
        }

        await audit.RecordAsync(actor, actionName?.Invoke() ?? action, run.TargetId, $"run {run.Id}",
            details?.Invoke() is { } extra ? new { run = run.Id, state = run.State.ToString(), schedule = extra }
            : host is not null ? new { run = run.Id, state = run.State.ToString(), phase = stoppedPhase, host, confirmed }
            : (object)new { run = run.Id, reason, state = run.State.ToString(), phase = stoppedPhase, confirmed }, ct);
        if (schedule && RunStateMachine.IsMoving(run.State))
        {
            await runJobs.ScheduleAsync(run.Id, ct);
        }

        return RunResult.Ok(run.Id);
    }
}
