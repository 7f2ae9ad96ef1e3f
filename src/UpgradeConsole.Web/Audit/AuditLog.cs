using System.Security.Claims;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Audit;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Audit;

/// <summary>
/// Told of every audit event once it is committed (the notifications subscribe here: every state change of a
/// run, a host key change and a preflight are audit events). Must return quickly and never throw.
/// </summary>
public interface IAuditListener
{
    void Recorded(AuditEvent recorded);
}

/// <summary>
/// Appends events to the audit history, chaining each to the one before. Appends are serialized:
/// within a process by a lock, across PostgreSQL nodes by a transaction-scoped advisory lock.
/// </summary>
public sealed class AuditLog(IServiceScopeFactory scopes, TimeProvider clock, ILogger<AuditLog> logger, IEnumerable<IAuditListener> listeners)
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
        AuditEvent committed;
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
            committed = audit;
        }
        finally
        {
            Gate.Release();
        }

        // After the commit and outside the lock: what follows an event (a notification) never holds up the chain.
        foreach (var listener in listeners)
        {
            listener.Recorded(committed);
        }
    }

    private static DateTimeOffset TruncateToMicroseconds(DateTimeOffset time) =>
        new(time.Ticks - (time.Ticks % TimeSpan.TicksPerMicrosecond), time.Offset);

    private readonly Lock _checkpointGate = new();
    private (long Id, string Hash)? _checkpoint;

    /// <summary>
    /// Verifies what is new since the last verification that held on this node (security finding 2: a verify of a long chain
    /// must not cost the whole chain each time anyone asks). The checkpoint event is re-read and re-hashed first, so a
    /// checkpoint that was changed or removed breaks the verification; events before it are covered by
    /// <see cref="VerifyFullAsync"/> (the CLI, an Admin's full check, the daily housekeeping).
    /// </summary>
    public Task<AuditVerification> VerifyAsync(CancellationToken ct = default) => VerifyAsync(full: false, ct);

    /// <summary>
    /// The verification a person gets: an Admin walks the whole chain unless they ask for less (<paramref name="full"/> false);
    /// everyone else checks what is new since the last verification (a full walk is refused to them: it runs daily anyway).
    /// </summary>
    public Task<AuditVerification> VerifyForAsync(ClaimsPrincipal person, bool? full, CancellationToken ct = default)
    {
        var admin = person.IsInRole(Core.Accounts.Roles.Admin);
        if (full == true && !admin)
        {
            throw new Accounts.AccessDeniedException("Only an Admin walks the whole audit chain on request (it runs daily by itself); without it the events since the last verification are checked.");
        }

        return VerifyAsync(full ?? admin, ct);
    }

    /// <summary>Walks the whole chain in sequence order (streamed: memory stays flat however long the history).</summary>
    public Task<AuditVerification> VerifyFullAsync(CancellationToken ct = default) => VerifyAsync(full: true, ct);

    private async Task<AuditVerification> VerifyAsync(bool full, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var previous = AuditChain.Genesis;
        long expected = 1;
        long walked = 0;
        (long Id, string Hash)? checkpoint;
        lock (_checkpointGate)
        {
            checkpoint = full ? null : _checkpoint;
        }

        if (checkpoint is { } anchor)
        {
            var stored = await db.AuditEvents.AsNoTracking().FirstOrDefaultAsync(e => e.Id == anchor.Id, ct);
            walked++;
            if (stored is null || stored.Hash != anchor.Hash || AuditChain.Hash(stored.PreviousHash, stored.ToRecord()) != stored.Hash)
            {
                const string problem = "the event last verified is no longer what it was (changed or removed since)";
                logger.LogWarning("Audit chain broken at event {Sequence}: {Problem}", anchor.Id, problem);
                return new AuditVerification(anchor.Id, previous, anchor.Id, problem, walked);
            }

            previous = anchor.Hash;
            expected = anchor.Id + 1;
        }

        var after = expected - 1;
        await foreach (var e in db.AuditEvents.AsNoTracking().Where(e => e.Id > after).OrderBy(e => e.Id).AsAsyncEnumerable().WithCancellation(ct))
        {
            walked++;
            if (AuditChain.Problem(expected, previous, e.ToRecord(), e.PreviousHash, e.Hash) is { } problem)
            {
                logger.LogWarning("Audit chain broken at event {Sequence}: {Problem}", e.Id, problem);
                return new AuditVerification(expected, previous, Math.Min(e.Id, expected), problem, walked);
            }

            previous = e.Hash;
            expected++;
        }

        if (expected > 1)
        {
            lock (_checkpointGate)
            {
                if (_checkpoint is null || _checkpoint.Value.Id < expected - 1)
                {
                    _checkpoint = (expected - 1, previous);
                }
            }
        }

        return new AuditVerification(expected - 1, previous, null, null, walked);
    }
}
