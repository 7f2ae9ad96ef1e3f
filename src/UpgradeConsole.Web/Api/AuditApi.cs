using System.Text.Json;
using UpgradeConsole.Web.Audit;

namespace UpgradeConsole.Web.Api;

/// <summary>The audit history: read with the page's filters (keyset paging), and the chain check.</summary>
public static class AuditApi
{
    public static RouteGroupBuilder MapAuditApi(this RouteGroupBuilder api)
    {
        api.MapGet("/audit", async (string? actor, string? action, int? target, DateTimeOffset? from, DateTimeOffset? to, string? q, long? before, int? limit, AuditQuery query, CancellationToken ct) =>
        {
            if (limit is < 1 or > 1000)
            {
                return ApiProblems.Invalid("limit", "1 to 1000.");
            }

            var filter = new AuditFilter
            {
                Actor = Text(actor),
                Action = Text(action),
                TargetId = target,
                From = from?.ToUniversalTime(),
                To = to?.ToUniversalTime(),
                Search = Text(q),
                Before = before,
            };
            var size = limit ?? 100;
            var page = await query.PageAsync(filter, size, ct);
            var events = page.Take(size).Select(e => new AuditEventDto(e.Id, e.At, e.Actor, e.Action, e.TargetId, e.Subject,
                JsonDocument.Parse(e.Details).RootElement.Clone(), e.PreviousHash, e.Hash)).ToList();
            return TypedResults.Ok(new AuditPage(events, page.Count > size ? events[^1].Sequence : null));
        }).WithSummary("Audit events, newest first")
            .WithDescription("actor: part of the e-mail; action: exact (run.start) or a family ending in a dot (run.); target: id; from/to: ISO 8601 times; q: searched in the object and the details. " +
                "Pass nextBefore as 'before' for the next page.")
            .Produces<AuditPage>().ProducesValidationProblem().WithTags("Audit");

        api.MapPost("/audit/verify", async (AuditLog log, HttpContext http, CancellationToken ct) =>
        {
            var result = await log.VerifyAsync(ct);
            await log.RecordAsync(http.User, "audit.verify", details: new { holds = result.Holds, events = result.Events, brokenAt = result.BrokenAt, result.HeadHash }, ct: ct);
            return TypedResults.Ok(new AuditVerifyDto(result.Holds, result.Events, result.BrokenAt, result.Problem, result.HeadHash, result.ToString()));
        }).WithTags("Audit").WithSummary("Walk the hash chain").WithDescription("holds is false when an event was changed, removed or inserted; brokenAt names the first.");
        return api;
    }

    private static string? Text(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
