using System.Globalization;
using UpgradeConsole.Core.Audit;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Audit;

public static class AuditSetup
{
    public static WebApplicationBuilder AddAudit(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<AuditLog>();
        builder.Services.AddScoped<AuditQuery>();
        builder.Services.AddScoped<AuditHistory>();
        return builder;
    }

    /// <summary>The CSV export: the page's filters, every matching event, streamed (a download, so an endpoint; the page checks the chain itself).</summary>
    public static IEndpointRouteBuilder MapAudit(this IEndpointRouteBuilder app)
    {
        app.MapGet("/audit/export.csv", async (HttpContext http, AuditQuery query, AppDbContext db, AuditLog audit, TimeProvider clock, CancellationToken ct) =>
        {
            var filter = AuditFilter.FromQuery(http.Request.Query);
            var targets = await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.ToDictionaryAsync(db.Targets, t => t.Id, t => t.Name, ct);
            await audit.RecordAsync(http.User, "audit.export", details: new { filter = filter.ToQuery() }, ct: ct);
            http.Response.ContentType = "text/csv; charset=utf-8";
            http.Response.Headers.ContentDisposition = $"attachment; filename=\"audit-{clock.GetUtcNow():yyyyMMdd-HHmm}.csv\"";
            await using var writer = new StreamWriter(http.Response.Body, new System.Text.UTF8Encoding(false), 64 * 1024);
            await writer.WriteAsync(CsvLine.Format(["sequence", "time_utc", "actor", "action", "target_id", "target", "object", "details", "previous_hash", "hash"]));
            await foreach (var e in query.FindAsync(filter, ct))
            {
                await writer.WriteAsync(CsvLine.Format(
                [
                    e.Id.ToString(CultureInfo.InvariantCulture),
                    e.At.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", CultureInfo.InvariantCulture),
                    e.Actor,
                    e.Action,
                    e.TargetId?.ToString(CultureInfo.InvariantCulture),
                    e.TargetId is { } t ? targets.GetValueOrDefault(t) : null,
                    e.Subject,
                    e.Details,
                    e.PreviousHash,
                    e.Hash,
                ]));
            }
        }).RequireAuthorization(Policies.View);

        return app;
    }
}
