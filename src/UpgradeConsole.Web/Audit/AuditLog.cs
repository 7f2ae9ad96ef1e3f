using System.Security.Claims;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Audit;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Audit;

/// <summary>
/// Appends events to the audit history, chaining each to the one before. Appends are serialized:
/// within a process by a lock, across PostgreSQL nodes by a transaction-scoped advisory lock.
/// </summary>
public sealed class AuditLog(IServiceScopeFactory scopes, TimeProvider clock, ILogger<AuditLog> logger)
{
    private static readonly SemaphoreSlim Gate = new(1, 1);

    // Readable details ('+' stays '+'): they are stored and searched, and HTML-encoded when shown.
    private static readonly JsonSerializerOptions DetailsJson = new(JsonSerializerOptions.Web)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
    private const long AdvisoryLockKey = 0x55435f4155444954; // "UC_AUDIT"

    /// <summary>Records an event by <paramref name="actor"/> (a user principal or null for the system).</summary>
    /// <remarks>An action taken through the API with a personal token names the token in the details (<c>apiToken</c>).</remarks>
    public Task RecordAsync(ClaimsPrincipal? actor, string action, int? targetId = null, string? subject = null, object? details = null, CancellationToken ct = default)
    {
        if (Api.TokenClaims.Of(actor) is { } token)
        {
            var node = details is null ? new System.Text.Json.Nodes.JsonObject() : JsonSerializer.SerializeToNode(details, DetailsJson);
            if (node is System.Text.Json.Nodes.JsonObject fields)
            {
                fields["apiToken"] = new System.Text.Json.Nodes.JsonObject { ["id"] = token.Id, ["name"] = token.Name };
                details = fields;
            }
        }

        return RecordAsync(actor?.Identity?.Name ?? "system", action, targetId, subject, details, ct);
    }

    public async Task RecordAsync(string actor, string action, int? targetId = null, string? subject = null, object? details = null, CancellationToken ct = default)
    {
        var json = details is null ? "{}" : JsonSerializer.Serialize(details, DetailsJson);
        await Gate.WaitAsync(ct);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            if (db.Database.IsNpgsql())
            {
                await db.Database.ExecuteSqlRawAsync($"SELECT pg_advisory_xact_lock({AdvisoryLockKey})", ct);
            }

            var last = await db.AuditEvents.OrderByDescending(e => e.Id).Select(e => new { e.Id, e.Hash }).FirstOrDefaultAsync(ct);
            var audit = new AuditEvent
            {
                Id = (last?.Id ?? 0) + 1,
                // Whole microseconds: PostgreSQL keeps no more, and the hash must survive the round trip.
                At = TruncateToMicroseconds(clock.GetUtcNow()),
                Actor = actor,
                Action = action,
                TargetId = targetId,
                Subject = subject,
                Details = json,
                PreviousHash = last?.Hash ?? AuditChain.Genesis,
            };
            audit.Hash = AuditChain.Hash(audit.PreviousHash, audit.ToRecord());
            db.AuditEvents.Add(audit);
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
            logger.LogInformation("Audit {Sequence}: {Actor} {Action} {Subject}", audit.Id, actor, action, subject);
        }
        finally
        {
            Gate.Release();
        }
    }

    private static DateTimeOffset TruncateToMicroseconds(DateTimeOffset time) =>
        new(time.Ticks - (time.Ticks % TimeSpan.TicksPerMicrosecond), time.Offset);

    /// <summary>Walks the whole chain in sequence order (streamed: memory stays flat however long the history).</summary>
    public async Task<AuditVerification> VerifyAsync(CancellationToken ct = default)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var previous = AuditChain.Genesis;
        long expected = 1;
        await foreach (var e in db.AuditEvents.AsNoTracking().OrderBy(e => e.Id).AsAsyncEnumerable().WithCancellation(ct))
        {
            if (AuditChain.Problem(expected, previous, e.ToRecord(), e.PreviousHash, e.Hash) is { } problem)
            {
                logger.LogWarning("Audit chain broken at event {Sequence}: {Problem}", e.Id, problem);
                return new AuditVerification(expected, previous, Math.Min(e.Id, expected), problem);
            }

            previous = e.Hash;
            expected++;
        }

        return new AuditVerification(expected - 1, previous, null, null);
    }
}
