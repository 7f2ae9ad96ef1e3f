using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Api;

/// <summary>Runbooks and runs: plan, start, approve, steer, read status and log (text or a resumable event stream).</summary>
public static class RunsApi
{
    public static RouteGroupBuilder MapRunsApi(this RouteGroupBuilder api)
    {
        api.MapGet("/runbooks", (RunbookCatalog runbooks) => TypedResults.Ok(runbooks.All.Select(r => new RunbookDto(
                r.Id, r.Title, r.Product, r.FixedToVersion, r.HasDataMigration,
                [.. r.Phases.Select(p => new PhaseDefinitionDto(p.Key, p.Title, p.Idempotent, p.PointOfNoReturn))], r.Checklist)).ToList()))
            .WithTags("Runbooks").WithSummary("List the runbooks");

        api.MapGet("/targets/{id:int}/plan", async (int id, string? runbook, string? to, string? oauthClient, bool? dataMigration, bool? chain, TargetService targets, PlanBuilder plans, RunbookCatalog runbooks, CancellationToken ct) =>
        {
            if (runbooks.Find(runbook ?? "") is null or { IsRehearsal: true })
            {
                return ApiProblems.Invalid("runbook", $"One of: {string.Join(", ", runbooks.All.Select(r => r.Id))}.");
            }

            if (await targets.FindAsync(id, ct) is null)
            {
                return ApiProblems.NotFound("target");
            }

            var plan = await plans.BuildAsync(id, runbook!, to, oauthClient, ct, dataMigration == true, chain == true);
            return plan.Error is not null ? ApiProblems.Conflict(plan.Error) : TypedResults.Ok(PlanDto.From(plan));
        }).RequireAuthorization(ApiPolicies.Operate).WithTags("Runs")
            .WithSummary("Preview the plan of a run (nothing is recorded)")
            .WithDescription("What the plan page shows: every phase with its exact commands, the env-file changes with their reasons and the diff (secrets masked), who will and will not be migrated, the backup location and database size, the expected duration, the last preflight. " +
                "chain=true: a version further than one hop away is planned as a chain of runs (Backend.AI); the plan is its first hop and lists every hop under chain.")
            .Produces<PlanDto>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);

        api.MapPost("/targets/{id:int}/runs", async (int id, PlanRequest input, TargetService targets, RunService runs, RunbookCatalog runbooks, AppDbContext db, HttpContext http, CancellationToken ct) =>
        {
            var runbook = runbooks.Find(input.Runbook ?? "");
            var errors = new Dictionary<string, string[]>();
            if (runbook is null or { IsRehearsal: true })
            {
                errors["runbook"] = [$"One of: {string.Join(", ", runbooks.All.Select(r => r.Id))}."];
            }
            else if (runbook.FixedToVersion is null && string.IsNullOrWhiteSpace(input.To))
            {
                errors["to"] = ["Give the version to upgrade to, such as 2.16.7."];
            }

            if (input.Overrides?.Any(o => string.IsNullOrWhiteSpace(o.Value)) == true)
            {
                errors["overrides"] = ["Every override needs a written reason."];
            }

            if (errors.Count > 0)
            {
                return ApiProblems.Invalid(errors);
            }

            if (await targets.FindAsync(id, ct) is null)
            {
                return ApiProblems.NotFound("target");
            }

            if (input.Overrides is { Count: > 0 } && !http.User.IsInRole(Roles.Admin))
            {
                return ApiProblems.Forbidden("Only an Admin may override a failing preflight check.");
            }

            if (await runs.ActiveRunAsync(id, ct) is { } active)
            {
                return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "A run is already active on this target",
                    detail: $"Run {active.Id} is {active.State}; finish, roll back or abandon it first.",
                    extensions: new Dictionary<string, object?> { ["activeRun"] = active.Id });
            }

            if (input.BatchSize is < 1)
            {
                return ApiProblems.Invalid("batchSize", "At least 1 host a batch (leave it out for the runbook's default, a quarter of the hosts).");
            }

            if (input.FailuresAllowed is < 0)
            {
                return ApiProblems.Invalid("failuresAllowed", "0 or more (0: the rollout stops at the first failed host).");
            }

            var result = await runs.PlanAsync(id, runbook!.Id, input.To, input.OAuthClient, input.Overrides ?? [], http.User, ct, dataMigration: input.DataMigration,
                rollout: new Runbooks.RolloutChoice(input.BatchSize, input.FailuresAllowed), chain: input.Chain);
            if (!result.Succeeded)
            {
                return ApiProblems.Conflict(result.Error!);
            }

            var run = (await runs.FindAsync(result.RunId!.Value, ct))!;
            var dto = new PlannedRunDto(await DtoAsync(run, db, http, ct), PlanDto.From(result.Plan!));
            return TypedResults.Created($"{ApiSetup.Prefix}/runs/{run.Id}", dto);
        }).RequireAuthorization(ApiPolicies.Operate).WithTags("Runs")
            .WithSummary("Plan a run")
            .WithDescription("Builds the plan against the target as it is now (the last preflight must pass, or an Admin overrides each failing check with a reason) and records it. The run then waits for start (and approval, if the target requires one). " +
                "chain: true plans a version further than one hop away as a chain of runs, this run its first hop; each next hop is planned, carries this approval and starts by itself when the one before succeeds (ADR 0028). " +
                "A runbook that rolls over many hosts (backendai-minor) takes batchSize (hosts a batch, 1 to the hosts it acts on; default a quarter of them) and failuresAllowed (failed hosts the rollout tolerates before it stops; default 0); the major runbook takes failuresAllowed only.")
            .Produces<PlannedRunDto>(StatusCodes.Status201Created).ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);

        api.MapPost("/targets/{id:int}/rehearsals", async (int id, RehearsalRequest input, TargetService targets, Rehearsals.RehearsalService rehearsals, RunService runs, RunbookCatalog runbooks,
            AppDbContext db, HttpContext http, CancellationToken ct) =>
        {
            var runbook = runbooks.Find(input.Runbook ?? "");
            var rehearsable = runbooks.All.Where(r => r.Rehearsal is not null).Select(r => r.Id).ToList();
            if (runbook is null || !rehearsable.Contains(runbook.Id))
            {
                return ApiProblems.Invalid("runbook", $"One of: {string.Join(", ", rehearsable)}.");
            }

            if (runbook.FixedToVersion is null && string.IsNullOrWhiteSpace(input.To))
            {
                return ApiProblems.Invalid("to", "Give the version to rehearse the upgrade to, such as 2.16.7.");
            }

            if (input.ReuseDumpWithinHours is <= 0 or > 24 * 366)
            {
                return ApiProblems.Invalid("reuseDumpWithinHours", "More than 0 and at most a year (8784 hours).");
            }

            if (await targets.FindAsync(id, ct) is null)
            {
                return ApiProblems.NotFound("target");
            }

            var result = await rehearsals.RehearseAsync(id, runbook.Id, input.To, input.OAuthClient, input.DataMigration,
                input.ReuseDumpWithinHours is { } hours ? TimeSpan.FromHours(hours) : null, http.User, ct);
            if (!result.Succeeded)
            {
                return ApiProblems.Conflict(result.Error!);
            }

            var run = (await runs.FindAsync(result.RunId!.Value, ct))!;
            return TypedResults.Created($"{ApiSetup.Prefix}/runs/{run.Id}", await DtoAsync(run, db, http, ct));
        }).RequireAuthorization(ApiPolicies.Operate).WithTags("Runs")
            .WithSummary("Start a rehearsal of a runbook on a copy")
            .WithDescription("Plans the runbook against the target as it is now and, at once, rehearses its database phases on a copy: a fresh verified dump (or the newest verified dump of an earlier run of this target started within reuseDumpWithinHours) restored into a scratch database, a scratch venv and env file. It never stops the service or changes the installed package, the env file or the production database. The run it returns has kind \"rehearsal\"; follow it like any run.")
            .Produces<RunDto>(StatusCodes.Status201Created).ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);

        api.MapGet("/runs", async (int? target, string? state, string? runbook, int? limit, AppDbContext db, CancellationToken ct) =>
        {
            RunState? wanted = null;
            if (state is not null)
            {
                if (!Enum.TryParse<RunState>(state, ignoreCase: true, out var parsed) || int.TryParse(state, CultureInfo.InvariantCulture, out _))
                {
                    return ApiProblems.Invalid("state", $"One of: {string.Join(", ", Enum.GetNames<RunState>())}.");
                }

                wanted = parsed;
            }

            if (limit is < 1 or > 1000)
            {
                return ApiProblems.Invalid("limit", "1 to 1000.");
            }

            var query = db.Runs.AsNoTracking();
            query = target is { } t ? query.Where(r => r.TargetId == t) : query;
            query = wanted is { } s ? query.Where(r => r.State == s) : query;
            query = runbook is { Length: > 0 } rb ? query.Where(r => r.RunbookId == rb) : query;
            var found = await query.OrderByDescending(r => r.Id).Take(limit ?? 100).ToListAsync(ct);
            return TypedResults.Ok(found.Select(RunSummaryDto.From).ToList());
        }).WithTags("Runs").WithSummary("List runs, newest first").Produces<List<RunSummaryDto>>().ProducesValidationProblem();

        var run = api.MapGroup("/runs/{id:int}").WithTags("Runs");
        api.MapGet("/runs/{id:int}", async (int id, RunService runs, AppDbContext db, HttpContext http, CancellationToken ct) =>
            await runs.FindAsync(id, ct) is { } found ? TypedResults.Ok(await DtoAsync(found, db, http, ct)) : ApiProblems.NotFound("run"))
            .WithTags("Runs").WithSummary("A run's status, phases, checklist and backup").Produces<RunDto>().ProducesProblem(StatusCodes.Status404NotFound);

        run.MapGet("/hosts", async (int id, RunService runs, Runbooks.FleetPhaseStore fleet, CancellationToken ct) =>
                await runs.FindAsync(id, ct) is null
                    ? ApiProblems.NotFound("run")
                    : TypedResults.Ok((await fleet.HostsAsync(id, ct)).Select(RunHostDto.From).ToList()))
            .WithSummary("Each host of the run's phases on many hosts (Backend.AI): its state, attempt, exit code and message")
            .WithDescription("One row per phase and host, in the phases' order and each phase's host order. State: Pending (not started), Running, Succeeded, Failed, Unreachable " +
                "(stepMayBeRunning: reached before it went away, so its step may still run there). Empty for a run with no such phase.")
            .Produces<List<RunHostDto>>().ProducesProblem(StatusCodes.Status404NotFound);

        run.MapGet("/plan", async (int id, RunService runs, CancellationToken ct) =>
            await runs.FindAsync(id, ct) is { } found
                ? TypedResults.Text(found.PlanJson, "application/json; charset=utf-8")
                : ApiProblems.NotFound("run"))
            .WithSummary("What the run recorded from its plan when it was made")
            .WithDescription("The facts the phases rely on: the server's Python, the users expected to be migrated and left out, the database size and alembic head, whether the data migration was chosen.")
            .Produces<RunPlanSnapshot>().ProducesProblem(StatusCodes.Status404NotFound);

        Action(run, "/start", "Start a planned run (only inside one of the target's maintenance windows, when it has any)", (id, _, runs, user, ct) => runs.StartAsync(id, user, ct));
        Action(run, "/approve", "Approve a planned run (not your own)", (id, _, runs, user, ct) => runs.ApproveAsync(id, user, ct));
        run.MapPost("/schedule", async Task<IResult> (int id, ScheduleRequest? input, RunService runs, AppDbContext db, HttpContext http, CancellationToken ct) =>
            {
                if (await runs.FindAsync(id, ct) is not { } found)
                {
                    return ApiProblems.NotFound("run");
                }

                var windows = await runs.WindowsOfAsync(found.TargetId, ct);
                if (!windows.TryParseTime(input?.At, out var at))
                {
                    return ApiProblems.Invalid("at", $"A time such as 2026-11-30T22:00:00Z, 2026-11-30T23:00:00+01:00, or 2026-11-30T22:00 (read in the target's time zone, {windows.Zone.Id}).");
                }

                return await ActAsync(id, runs, db, http, () => runs.ScheduleAsync(id, at, http.User, ct), ct);
            })
            .RequireAuthorization(ApiPolicies.Operate)
            .WithSummary("Schedule a planned run to start at a time, or move its schedule")
            .WithDescription("Body: {\"at\": \"2026-11-30T22:00\"}: with an offset or Z an instant, without one a wall-clock time in the target's time zone. " +
                "Who may start the run may schedule it (the approval must be given first); the time must be inside one of the target's maintenance windows when it has any. " +
                "At that time the run starts as if this person started it (checked again then), and its preflight runs again first. Audited (run.schedule / run.reschedule).")
            .Produces<RunDto>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        run.MapDelete("/schedule", (int id, string? reason, RunService runs, AppDbContext db, HttpContext http, CancellationToken ct) =>
                ActAsync(id, runs, db, http, () => runs.UnscheduleAsync(id, reason, http.User, ct), ct))
            .RequireAuthorization(ApiPolicies.Operate)
            .WithSummary("Cancel a planned run's scheduled start (it waits for a person again); ?reason= goes into the audit history")
            .Produces<RunDto>().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        run.MapPost("/retry", (int id, RetryRequest? input, RunService runs, AppDbContext db, HttpContext http, CancellationToken ct) =>
                ActAsync(id, runs, db, http, () => runs.RetryAsync(id, input?.Confirm == true, http.User, ct, input?.Host), ct))
            .RequireAuthorization(ApiPolicies.Operate)
            .WithSummary("Run the failed phase again, or one failed host of it alone")
            .WithDescription("A phase that is not safe to run twice (update-db-data) needs {\"confirm\": true} after checking the target. " +
                "A phase on many hosts (Backend.AI): without a host, its failed and unreachable hosts run again, then the rollout goes on (hosts already done are not run again); " +
                "with {\"host\": \"<address>\"} (a failed or unreachable host of the stopped phase, as GET /runs/{id}/hosts names it) that host runs alone, audited as run.retry-host, " +
                "and the phase is done once every one of its hosts is.")
            .Produces<RunDto>().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        run.MapPost("/preflight-overrides", (int id, PreflightOverrideRequest? input, RunService runs, AppDbContext db, HttpContext http, CancellationToken ct) =>
            {
                if (!http.User.IsInRole(Roles.Admin))
                {
                    return Task.FromResult(ApiProblems.Forbidden(PreflightGate.OverrideNeedsAdmin));
                }

                if (input?.Overrides is not { Count: > 0 } overrides || overrides.Any(o => string.IsNullOrWhiteSpace(o.Value)))
                {
                    return Task.FromResult(ApiProblems.Invalid("overrides", "Name each failing check to override, each with a written reason."));
                }

                return ActAsync(id, runs, db, http, () => runs.OverridePreflightAsync(id, overrides, http.User, ct), ct);
            })
            .RequireAuthorization(ApiPolicies.Operate)
            .WithSummary("Let a failed preflight phase pass (Admin): override each failing check with a reason")
            .WithDescription("Body: {\"overrides\": {\"<check id>\": \"<reason>\"}}. Only checks that fail in the target's latest preflight; the preflight runs again with them. " +
                "A failed preflight is never marked done (mark-done answers 409).")
            .Produces<RunDto>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status403Forbidden).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        ReasonAction(run, "/mark-done", "Declare the failed phase done (with a reason)", (id, reason, runs, user, ct) => runs.MarkDoneAsync(id, reason, user, ct));
        ReasonAction(run, "/rollback", "Roll back what the run changed (with a reason)", (id, reason, runs, user, ct) => runs.RollbackAsync(id, reason, user, ct));
        ReasonAction(run, "/abandon", "Abandon a stopped run (with a reason); nothing is undone", (id, reason, runs, user, ct) => runs.AbandonAsync(id, reason, user, ct));
        run.MapPost("/cancel", (int id, ReasonRequest? input, RunService runs, AppDbContext db, HttpContext http, CancellationToken ct) =>
                ActAsync(id, runs, db, http, () => runs.CancelAsync(id, string.IsNullOrWhiteSpace(input?.Reason) ? "cancelled through the API" : input.Reason.Trim(), http.User, ct), ct))
            .RequireAuthorization(ApiPolicies.Operate)
            .WithSummary("Stop the running step (its whole process group)")
            .Produces<RunDto>().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        run.MapPost("/checklist/{itemId:int}", (int id, int itemId, ChecklistRequest? input, RunService runs, AppDbContext db, HttpContext http, CancellationToken ct) =>
                ActAsync(id, runs, db, http, () => runs.TickAsync(id, itemId, input?.Done ?? true, input?.Note, http.User, ct), ct))
            .RequireAuthorization(ApiPolicies.Operate)
            .WithSummary("Tick (or untick) a manual checklist item")
            .WithDescription("The run succeeds when every item is ticked.")
            .Produces<RunDto>().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);

        run.MapGet("/log", async (int id, long? after, int? limit, AppDbContext db, HttpContext http, CancellationToken ct) =>
        {
            if (after is < 0 || limit is < 1)
            {
                return ApiProblems.Invalid(after is < 0 ? "after" : "limit", "Must be positive.");
            }

            if (!await db.Runs.AnyAsync(r => r.Id == id, ct))
            {
                return ApiProblems.NotFound("run");
            }

            // The last line is fixed first, so the header is true for the body that follows.
            var from = after ?? 0;
            var last = await RunLogHub.LastSequenceAsync(db, id, ct);
            if (limit is not null && last > from)
            {
                // Lines are numbered without gaps within a run.
                last = Math.Min(last, from + limit.Value);
            }

            http.Response.Headers["X-Last-Sequence"] = Math.Max(last, from).ToString(CultureInfo.InvariantCulture);
            http.Response.ContentType = "text/plain; charset=utf-8";
            await RunLogHub.WriteTextAsync(db, id, from, last, http.Response, ct);
            return Results.Empty;
        }).WithSummary("The log as text")
            .WithDescription("Lines after sequence number 'after' (0: from the start), at most 'limit' of them. X-Last-Sequence tells the number of the last line sent: pass it as 'after' next time.")
            .Produces<string>(contentType: "text/plain").ProducesProblem(StatusCodes.Status404NotFound);

        run.MapGet("/log/stream", (int id, long? after, AppDbContext db, HttpContext http, LiveConnections live, RunActivity activity, CancellationToken ct) =>
                StreamAsync(id, after, db, http, live, activity, ct))
            .WithSummary("The log as Server-Sent Events")
            .WithDescription("Events: 'line' (id = sequence number, data = {seq, phase, at, text}), 'phase' (data = the phase that changed), and 'end' (data = the run) once the run stops moving " +
                "(planned and not started, succeeded, failed, waiting for people…). Reconnect with Last-Event-ID (or ?after=) to get exactly the lines you lack. A comment is sent every 15 s to keep proxies open. " +
                "One person or token holds at most a few streams at once (429 with Retry-After beyond); a stream is closed when its token is revoked or its owner disabled or demoted.")
            .Produces<LogLineDto>(contentType: "text/event-stream").ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status429TooManyRequests);
        return api;
    }

    private delegate Task<RunResult> RunAction(int id, string reason, RunService runs, System.Security.Claims.ClaimsPrincipal user, CancellationToken ct);

    private static void Action(RouteGroupBuilder run, string path, string summary, RunAction action) =>
        run.MapPost(path, (int id, RunService runs, AppDbContext db, HttpContext http, CancellationToken ct) =>
                ActAsync(id, runs, db, http, () => action(id, "", runs, http.User, ct), ct))
            .RequireAuthorization(ApiPolicies.Operate).WithSummary(summary)
            .Produces<RunDto>().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);

    private static void ReasonAction(RouteGroupBuilder run, string path, string summary, RunAction action) =>
        run.MapPost(path, (int id, ReasonRequest? input, RunService runs, AppDbContext db, HttpContext http, CancellationToken ct) =>
                string.IsNullOrWhiteSpace(input?.Reason)
                    ? Task.FromResult(ApiProblems.Invalid("reason", "Give a reason: it goes into the audit history."))
                    : ActAsync(id, runs, db, http, () => action(id, input.Reason.Trim(), runs, http.User, ct), ct))
            .RequireAuthorization(ApiPolicies.Operate).WithSummary(summary)
            .Produces<RunDto>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);

    /// <summary>A run action: 404 for an unknown run, 409 when the run's state refuses it (with the reason), else the run as it is now.</summary>
    private static async Task<IResult> ActAsync(int id, RunService runs, AppDbContext db, HttpContext http, Func<Task<RunResult>> action, CancellationToken ct)
    {
        if (await runs.FindAsync(id, ct) is null)
        {
            return ApiProblems.NotFound("run");
        }

        var result = await action();
        if (!result.Succeeded)
        {
            return ApiProblems.Conflict(result.Error!);
        }

        return TypedResults.Ok(await DtoAsync((await runs.FindAsync(id, ct))!, db, http, ct));
    }

    private static async Task<RunDto> DtoAsync(Run run, AppDbContext db, HttpContext http, CancellationToken ct)
    {
        var target = await db.Targets.IgnoreQueryFilters().AsNoTracking().Where(t => t.Id == run.TargetId).Select(t => new { t.MaintenanceWindows, t.TimeZone }).FirstOrDefaultAsync(ct);
        var next = await Chains.RunChain.NextRunIdAsync(db.Runs, run, ct);
        return RunDto.From(run, await RunLogHub.LastSequenceAsync(db, run.Id, ct), $"{http.Request.Scheme}://{http.Request.Host}{http.Request.PathBase}",
            UpgradeConsole.Core.Scheduling.MaintenanceWindows.Of(target?.MaintenanceWindows, target?.TimeZone), next);
    }

    /// <summary>
    /// The SSE log stream. It waits for this run's lines to be stored (<see cref="RunActivity"/>, pushed by the log writer and
    /// the relay of other nodes) rather than polling, looks at the run's state once a second, and ends once the run is not
    /// moving. It counts against its owner's streams and is closed when the owner or token is no longer valid.
    /// </summary>
    private static async Task<IResult> StreamAsync(int id, long? after, AppDbContext db, HttpContext http, LiveConnections live, RunActivity activity, CancellationToken requestAborted)
    {
        if (!await db.Runs.AnyAsync(r => r.Id == id, requestAborted))
        {
            return ApiProblems.NotFound("run");
        }

        using var closing = CancellationTokenSource.CreateLinkedTokenSource(requestAborted);
        using var registration = live.TryOpen(LiveConnections.EventStream, http.User, closing.Cancel);
        if (registration is null)
        {
            return ApiProblems.TooMany(http, "This account or token already follows as many log streams as it may; close one first.", TimeSpan.FromSeconds(30));
        }

        var ct = closing.Token;

        var from = long.TryParse(http.Request.Headers["Last-Event-ID"].ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var resumed) ? resumed : after ?? 0;
        http.Response.ContentType = "text/event-stream; charset=utf-8";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        await http.Response.Body.FlushAsync(ct);

        var phases = new Dictionary<int, (PhaseState, int)>();
        var quietSince = TimeProvider.System.GetTimestamp();
        var stoppedChecks = 0;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var stored = activity.Next(id);
                var sent = false;
                await foreach (var page in RunLogHub.PagesAsync(db, id, from, long.MaxValue, ct))
                {
                    var text = new StringBuilder();
                    foreach (var line in page)
                    {
                        text.Append("id: ").Append(line.Sequence.ToString(CultureInfo.InvariantCulture)).Append("\nevent: line\ndata: ")
                            .Append(JsonSerializer.Serialize(new LogLineDto(line.Sequence, line.Phase, line.At, line.Text), JsonSerializerOptions.Web)).Append("\n\n");
                    }

                    await http.Response.WriteAsync(text.ToString(), ct);
                    await http.Response.Body.FlushAsync(ct);
                    from = page[^1].Sequence;
                    sent = true;
                }

                var run = await db.Runs.AsNoTracking().Include(r => r.Phases).FirstAsync(r => r.Id == id, ct);
                foreach (var phase in run.Phases.OrderBy(p => p.Index))
                {
                    if (!phases.TryGetValue(phase.Index, out var seen) || seen != (phase.State, phase.Attempt))
                    {
                        phases[phase.Index] = (phase.State, phase.Attempt);
                        var data = JsonSerializer.Serialize(PhaseDto.From(phase), ApiJson);
                        await http.Response.WriteAsync($"event: phase\ndata: {data}\n\n", ct);
                        sent = true;
                    }
                }

                // A stopped run may still have its last lines in flight: look twice before saying it ended.
                // A log stream stays open only while the run executes (the driver moves it): only then are lines written (security finding 4).
                if (!RunStateMachine.IsMoving(run.State) && !sent && ++stoppedChecks >= 2)
                {
                    var summary = JsonSerializer.Serialize(RunSummaryDto.From(run), ApiJson);
                    await http.Response.WriteAsync($"event: end\ndata: {summary}\n\n", ct);
                    await http.Response.Body.FlushAsync(ct);
                    break;
                }

                if (sent)
                {
                    quietSince = TimeProvider.System.GetTimestamp();
                    stoppedChecks = 0;
                    await http.Response.Body.FlushAsync(ct);
                }
                else if (TimeProvider.System.GetElapsedTime(quietSince) > TimeSpan.FromSeconds(15))
                {
                    await http.Response.WriteAsync(": still here\n\n", ct);
                    await http.Response.Body.FlushAsync(ct);
                    quietSince = TimeProvider.System.GetTimestamp();
                }

                await RunActivity.WaitAsync(stored, TimeSpan.FromSeconds(1), ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away (it resumes with Last-Event-ID), or the stream was closed because its owner or token is
            // no longer valid: then say so, so that a reconnect's 401 is not a surprise.
            if (!requestAborted.IsCancellationRequested)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await http.Response.WriteAsync("event: closed\ndata: {\"reason\":\"The account or token that opened this stream changed (revoked, disabled or demoted).\"}\n\n", timeout.Token);
                await http.Response.Body.FlushAsync(timeout.Token);
            }
        }

        return Results.Empty;
    }

    private static readonly JsonSerializerOptions ApiJson = new(JsonSerializerOptions.Web) { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };
}
