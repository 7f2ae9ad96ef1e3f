using System.Text.Json;
using UpgradeConsole.Core.Audit;
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

        api.MapPost("/audit/verify", async (bool? full, AuditLog log, HttpContext http, CancellationToken ct) =>
        {
            AuditVerification result;
            try
            {
                result = await log.VerifyForAsync(http.User, full, ct);
            }
            catch (UpgradeConsole.Web.Accounts.AccessDeniedException denied)
            {
                return ApiProblems.Forbidden(denied.Message);
            }

            var walkedAll = result.Walked >= result.Events && result.BrokenAt is null;
            await log.RecordAsync(http.User, "audit.verify", details: new { holds = result.Holds, events = result.Events, brokenAt = result.BrokenAt, result.HeadHash, walked = result.Walked }, ct: ct);
            return Results.Ok(new AuditVerifyDto(result.Holds, result.Events, result.BrokenAt, result.Problem, result.HeadHash, result.ToString(), walkedAll, result.Walked));
        }).WithTags("Audit").WithSummary("Check the hash chain")
            .WithDescription("holds is false when an event was changed, removed or inserted; brokenAt names the first. An Admin's check walks the whole chain (full=false: only what is new); " +
                "anyone else's checks the events since the last verification that held, anchored on the event it ended at (full=true is refused to them; the daily housekeeping walks it all). " +
                "walked tells how many events were read.")
            .Produces<AuditVerifyDto>().ProducesProblem(StatusCodes.Status403Forbidden);
        return api;
    }

    private static string? Text(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
