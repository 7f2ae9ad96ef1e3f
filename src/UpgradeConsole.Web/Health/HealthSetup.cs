using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Health;

/// <summary>
/// <c>/healthz</c> (liveness, for load balancers): 200 when the database answers, 503 when it does not.
/// <c>/healthz/ready</c> (readiness): the database and the job storage both answer. No login needed; no secrets in the body.
/// </summary>
public static class HealthSetup
{
    private const string Live = "live";
    private const string Ready = "ready";

    public static WebApplicationBuilder AddHealth(this WebApplicationBuilder builder)
    {
        builder.Services.AddHealthChecks()
            .AddCheck<DatabaseHealthCheck>("database", tags: [Live, Ready], timeout: TimeSpan.FromSeconds(5))
            .AddCheck<JobStorageHealthCheck>("jobs", tags: [Ready], timeout: TimeSpan.FromSeconds(5));
        return builder;
    }

    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/healthz", new HealthCheckOptions { ResponseWriter = WriteAsync, Predicate = c => c.Tags.Contains(Live) })
            .AllowAnonymous()
            .DisableRateLimiting();
        app.MapHealthChecks("/healthz/ready", new HealthCheckOptions { ResponseWriter = WriteAsync, Predicate = c => c.Tags.Contains(Ready) })
            .AllowAnonymous()
            .DisableRateLimiting();
        return app;
    }

    private static Task WriteAsync(HttpContext http, HealthReport report)
    {
        http.Response.ContentType = "application/json; charset=utf-8";
        http.Response.Headers.CacheControl = "no-store";
        return JsonSerializer.SerializeAsync(http.Response.Body, new
        {
            status = report.Status.ToString(),
            durationMs = (int)report.TotalDuration.TotalMilliseconds,
            checks = report.Entries.ToDictionary(e => e.Key, e => new
            {
                status = e.Value.Status.ToString(),
                description = e.Value.Description,
                durationMs = (int)e.Value.Duration.TotalMilliseconds,
            }),
        }, JsonSerializerOptions.Web, http.RequestAborted);
    }
}

internal sealed class DatabaseHealthCheck(AppDbContext db) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            return await db.Database.CanConnectAsync(cancellationToken)
                ? HealthCheckResult.Healthy("The database answers.")
                : HealthCheckResult.Unhealthy("The database does not answer.");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The exception text can name hosts and users: it goes to the log, not the anonymous response.
            return HealthCheckResult.Unhealthy("The database does not answer.", ex);
        }
    }
}

/// <summary>Hangfire's storage answers a read (the phase jobs of every run go through it).</summary>
internal sealed class JobStorageHealthCheck(Hangfire.JobStorage storage) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            using var connection = storage.GetConnection();
            connection.GetAllItemsFromSet("upgradeconsole:ready-probe");
            return Task.FromResult(HealthCheckResult.Healthy("The job storage answers."));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy("The job storage does not answer.", ex));
        }
    }
}
