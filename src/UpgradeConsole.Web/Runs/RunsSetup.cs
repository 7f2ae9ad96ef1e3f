using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Runs;

public static class RunsSetup
{
    public static WebApplicationBuilder AddRuns(this WebApplicationBuilder builder)
    {
        builder.Services.AddScoped<RunService>();
        builder.Services.AddScoped<RunDriver>();
        builder.Services.AddScoped<IRunPhaseDriver>(sp => sp.GetRequiredService<RunDriver>());
        builder.Services.AddScoped<PlanBuilder>();
        builder.Services.AddSignalR(o => o.MaximumReceiveMessageSize = 64 * 1024);
        builder.Services.AddSingleton<DashboardNode>();
        builder.Services.AddHostedService<RunLogRelay>();
        return builder;
    }

    /// <summary>Run actions (form posts, answered with a redirect to the run page) and the log download.</summary>
    public static IEndpointRouteBuilder MapRuns(this IEndpointRouteBuilder app)
    {
        app.MapHub<RunLogHub>(RunLogHub.Path);

        app.MapPost("/targets/{id:int}/runs", async (int id, HttpContext http, RunService runs, CancellationToken ct) =>
        {
            var form = await http.Request.ReadFormAsync(ct);
            var overrides = form.Keys.Where(k => k.StartsWith("override:", StringComparison.Ordinal) && !string.IsNullOrWhiteSpace(form[k]))
                .ToDictionary(k => k["override:".Length..], k => form[k].ToString().Trim());
            var result = await runs.PlanAsync(id, form["runbook"].ToString(), form["to"].ToString(), form["oauth"].ToString(), overrides, http.User, ct,
                dataMigration: form["data"] == "true");
            return result.Succeeded
                ? Results.Redirect($"/runs/{result.RunId}")
                : Results.Redirect($"/targets/{id}/plan?runbook={Uri.EscapeDataString(form["runbook"].ToString())}&to={Uri.EscapeDataString(form["to"].ToString())}&error={Uri.EscapeDataString(result.Error!)}");
        }).RequireAuthorization(Policies.Operate).RequireAntiforgery();

        var run = app.MapGroup("/runs/{id:int}").RequireAntiforgery();
        run.MapPost("/start", (int id, HttpContext http, RunService runs, CancellationToken ct) => Act(id, runs.StartAsync(id, http.User, ct))).RequireAuthorization(Policies.Operate);
        run.MapPost("/approve", (int id, HttpContext http, RunService runs, CancellationToken ct) => Act(id, runs.ApproveAsync(id, http.User, ct))).RequireAuthorization(Policies.Operate);
        // The schedule section's forms (ScheduleSection.razor): a wall-clock time from the page is read in the target's time zone.
        run.MapPost("/schedule", async (int id, [FromForm] string? at, HttpContext http, RunService runs, CancellationToken ct) =>
        {
            if (await runs.FindAsync(id, ct) is not { } found)
            {
                return Results.NotFound();
            }

            var windows = await runs.WindowsOfAsync(found.TargetId, ct);
            return windows.TryParseTime(at, out var when)
                ? await Act(id, runs.ScheduleAsync(id, when, http.User, ct))
                : await Act(id, Task.FromResult(RunResult.Fail($"Choose the day and time to start (in {windows.Zone.Id}).")));
        }).RequireAuthorization(Policies.Operate);
        run.MapPost("/unschedule", (int id, [FromForm] string? reason, HttpContext http, RunService runs, CancellationToken ct) => Act(id, runs.UnscheduleAsync(id, reason, http.User, ct))).RequireAuthorization(Policies.Operate);
        run.MapPost("/retry", (int id, [FromForm] bool? confirm, HttpContext http, RunService runs, CancellationToken ct) => Act(id, runs.RetryAsync(id, confirm == true, http.User, ct))).RequireAuthorization(Policies.Operate);
        run.MapPost("/mark-done", (int id, [FromForm] string? reason, HttpContext http, RunService runs, CancellationToken ct) => Act(id, runs.MarkDoneAsync(id, reason ?? "", http.User, ct))).RequireAuthorization(Policies.Operate);
        // Open to Operators so that they are told why it is refused (the service lets only an Admin override).
        run.MapPost("/override-preflight", async (int id, HttpContext http, RunService runs, CancellationToken ct) =>
        {
            var form = await http.Request.ReadFormAsync(ct);
            var overrides = form.Keys.Where(k => k.StartsWith("override:", StringComparison.Ordinal) && !string.IsNullOrWhiteSpace(form[k]))
                .ToDictionary(k => k["override:".Length..], k => form[k].ToString().Trim(), StringComparer.Ordinal);
            return await Act(id, runs.OverridePreflightAsync(id, overrides, http.User, ct));
        }).RequireAuthorization(Policies.Operate);
        run.MapPost("/rollback", (int id, [FromForm] string? reason, HttpContext http, RunService runs, CancellationToken ct) => Act(id, runs.RollbackAsync(id, reason ?? "", http.User, ct))).RequireAuthorization(Policies.Operate);
        run.MapPost("/abandon", (int id, [FromForm] string? reason, HttpContext http, RunService runs, CancellationToken ct) => Act(id, runs.AbandonAsync(id, reason ?? "", http.User, ct))).RequireAuthorization(Policies.Operate);
        run.MapPost("/cancel", (int id, [FromForm] string? reason, HttpContext http, RunService runs, CancellationToken ct) => Act(id, runs.CancelAsync(id, string.IsNullOrWhiteSpace(reason) ? "cancelled from the run page" : reason, http.User, ct))).RequireAuthorization(Policies.Operate);
        run.MapPost("/checklist/{itemId:int}", (int id, int itemId, [FromForm] bool? done, [FromForm] string? note, HttpContext http, RunService runs, CancellationToken ct) =>
            Act(id, runs.TickAsync(id, itemId, done == true, note, http.User, ct))).RequireAuthorization(Policies.Operate);

        // The polled fragment. When the run's state differs from the one the page was drawn in (?since=), htmx reloads
        // the whole page instead, so the action buttons and the checklist always match the state.
        run.MapGet("/live", async (int id, string? since, RunService runs, HttpContext http, CancellationToken ct) =>
        {
            if (await runs.FindAsync(id, ct) is not { } found)
            {
                return Results.NotFound();
            }

            if (since is not null && !string.Equals(since, found.State.ToString(), StringComparison.Ordinal))
            {
                http.Response.Headers["HX-Refresh"] = "true";
                return Results.NoContent();
            }

            return new RazorComponentResult<RunLive>(new Dictionary<string, object?> { [nameof(RunLive.Run)] = found });
        }).RequireAuthorization(Policies.View);

        // The whole log as text, streamed from the database in pages (works for millions of lines).
        run.MapGet("/log.txt", async (int id, AppDbContext db, HttpContext http, CancellationToken ct) =>
        {
            http.Response.ContentType = "text/plain; charset=utf-8";
            http.Response.Headers.ContentDisposition = $"attachment; filename=\"run-{id}.log\"";
            await RunLogHub.WriteTextAsync(db, id, 0, long.MaxValue, http.Response, ct);
        }).RequireAuthorization(Policies.View);
        return app;
    }

    private static async Task<IResult> Act(int id, Task<RunResult> action)
    {
        var result = await action;
        return Results.Redirect(result.Succeeded ? $"/runs/{id}" : $"/runs/{id}?error={Uri.EscapeDataString(result.Error!)}");
    }
}
