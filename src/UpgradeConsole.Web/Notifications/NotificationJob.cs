using Microsoft.AspNetCore.DataProtection;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Notifications;

/// <summary>
/// Enqueues the notification job of an audit event that may mean one (never sends inline: the phase job or the
/// request that recorded the event goes on at once).
/// </summary>
public sealed class AuditNotifications(IServiceProvider services, ILogger<AuditNotifications> logger) : IAuditListener
{
    public void Recorded(AuditEvent recorded)
    {
        if (recorded.TargetId is null || !NotificationComposer.Actions.Contains(recorded.Action))
        {
            return;
        }

        try
        {
            var id = recorded.Id;
            services.GetRequiredService<IBackgroundJobClient>().Enqueue<NotificationJob>(j => j.DispatchAsync(id, CancellationToken.None));
        }
        catch (Exception ex)
        {
            // The audit event is committed and the caller's action done; a lost notification is an error in the log, not a failed action.
            logger.LogError(ex, "The notifications of audit event {Sequence} ({Action}) could not be enqueued", recorded.Id, recorded.Action);
        }
    }
}

/// <summary>
/// The notification jobs: one per audit event (works out the deliveries: the target's channels and the people who
/// asked for the event), then one per delivery attempt. Hangfire delivers at least once, so a delivery claims
/// its attempt before sending; failed attempts are retried with exponential backoff as scheduled jobs, then
/// the delivery is logged as failed with the last answer.
/// </summary>
public sealed class NotificationJob(
    AppDbContext db,
    NotificationComposer composer,
    EmailSender email,
    WebhookSender webhooks,
    IBackgroundJobClient jobs,
    IOptionsMonitor<NotificationOptions> options,
    TimeProvider clock,
    ILogger<NotificationJob> logger)
{
    [AutomaticRetry(Attempts = 0)]
    [JobDisplayName("Notifications of audit event {0}")]
    public async Task DispatchAsync(long auditEventId, CancellationToken ct)
    {
        var deliveries = db.Set<NotificationDelivery>();
        var existing = await deliveries.Where(d => d.AuditEventId == auditEventId).ToListAsync(ct);
        if (existing.Count > 0)
        {
            // Delivered again: only what the first delivery may have left unqueued.
            foreach (var d in existing.Where(d => d.State == DeliveryState.Pending && d.Attempts == 0))
            {
                Enqueue(d.Id, 1);
            }

            return;
        }

        var e = await db.AuditEvents.AsNoTracking().FirstOrDefaultAsync(x => x.Id == auditEventId, ct);
        if (e?.TargetId is not { } targetId)
        {
            return;
        }

        var added = new List<NotificationDelivery>();
        foreach (var kind in await composer.KindsOfAsync(e, ct))
        {
            var message = await composer.ComposeAsync(e, kind, ct);
            var channels = await db.Set<NotificationChannel>().AsNoTracking().Where(c => c.TargetId == targetId && c.Enabled).ToListAsync(ct);
            foreach (var channel in channels.Where(c => c.Events.HasFlag(kind)))
            {
                added.Add(NewDelivery(e, message, channel.Kind, channel.Kind == ChannelKind.Webhook ? channel.Address : channel.Address.Trim(),
                    channel.Kind == ChannelKind.Webhook ? NotificationComposer.WebhookBody(message, channel.SlackText) : message.Text, channel.Id, null));
            }

            // People: a preference for this target replaces their preference for every target.
            var preferences = await db.Set<NotificationPreference>().AsNoTracking()
                .Where(p => p.TargetId == targetId || p.TargetId == null).ToListAsync(ct);
            var wanted = preferences.GroupBy(p => p.UserId)
                .Select(g => g.OrderBy(p => p.TargetId is null).First())
                .Where(p => p.Events.HasFlag(kind)).Select(p => p.UserId).ToList();
            var people = await db.Users.AsNoTracking().Where(u => wanted.Contains(u.Id) && !u.IsDisabled && u.Email != null)
                .Select(u => new { u.Id, u.Email }).ToListAsync(ct);
            foreach (var person in people)
            {
                added.Add(NewDelivery(e, message, ChannelKind.Email, person.Email!, message.Text, null, person.Id));
            }
        }

        // One delivery per event, kind and address (a person also listed by an Admin gets one mail).
        added = added.DistinctBy(d => (d.Event, d.Kind, d.Recipient.ToUpperInvariant())).ToList();
        if (added.Count == 0)
        {
            return;
        }

        deliveries.AddRange(added);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException)
        {
            // Another delivery of this job stored them first; it enqueues them.
            return;
        }

        foreach (var d in added)
        {
            Enqueue(d.Id, 1);
        }
    }

    /// <summary>One attempt of one delivery; a failure schedules the next attempt after the backoff, or logs the delivery as failed.</summary>
    [AutomaticRetry(Attempts = 0)]
    [JobDisplayName("Notification {0}, attempt {1}")]
    public async Task DeliverAsync(long deliveryId, int attempt, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        // The claim: only the job of the attempt due moves the count on; a second delivery of it finds it moved.
        var claimed = await db.Set<NotificationDelivery>()
            .Where(d => d.Id == deliveryId && d.Attempts == attempt - 1 && (d.State == DeliveryState.Pending || d.State == DeliveryState.Retrying))
            .ExecuteUpdateAsync(s => s.SetProperty(d => d.Attempts, attempt), ct);
        if (claimed == 0)
        {
            return;
        }

        var delivery = await db.Set<NotificationDelivery>().FirstAsync(d => d.Id == deliveryId, ct);
        var secrets = delivery.TargetId is { } targetId ? await composer.SecretsAsync(targetId, ct) : [];
        delivery.LastAttemptAt = now;
        try
        {
            if (delivery.Kind == ChannelKind.Webhook)
            {
                var channel = delivery.ChannelId is { } channelId ? await db.Set<NotificationChannel>().AsNoTracking().FirstOrDefaultAsync(c => c.Id == channelId, ct) : null;
                if (channel?.ProtectedSecret is null)
                {
                    throw new DeliveryFailedException("The webhook was removed.");
                }

                var (status, response) = await webhooks.SendAsync(channel.Address, delivery.Body, composer.Secrets.Unprotect(channel.ProtectedSecret),
                    NotificationKinds.Name(delivery.Event), delivery.Id, ct);
                delivery.LastStatus = status;
                delivery.LastResponse = Bounded(NotificationComposer.MaskText(response, secrets));
            }
            else
            {
                delivery.LastResponse = Bounded(NotificationComposer.MaskText(await email.SendAsync(delivery.Recipient, delivery.Subject, delivery.Body, ct), secrets));
                delivery.LastStatus = null;
            }

            delivery.State = DeliveryState.Delivered;
            delivery.NextAttemptAt = null;
        }
        catch (DeliveryFailedException ex)
        {
            delivery.LastStatus = ex.Status;
            delivery.LastResponse = Bounded(NotificationComposer.MaskText(ex.Message, secrets));
            var max = Math.Max(1, options.CurrentValue.Attempts);
            if (attempt < max)
            {
                var wait = options.CurrentValue.Backoff(attempt);
                delivery.State = DeliveryState.Retrying;
                delivery.NextAttemptAt = now + wait;
                await db.SaveChangesAsync(ct);
                logger.LogWarning("Notification {Delivery} to {Recipient}: attempt {Attempt} of {Max} failed ({Error}); next in {Wait}", delivery.Id, delivery.Recipient, attempt, max, delivery.LastResponse, wait);
                jobs.Schedule<NotificationJob>(j => j.DeliverAsync(deliveryId, attempt + 1, CancellationToken.None), wait);
                return;
            }

            delivery.State = DeliveryState.Failed;
            delivery.NextAttemptAt = null;
            logger.LogError("Notification {Delivery} to {Recipient} failed after {Attempt} attempts: {Error}", delivery.Id, delivery.Recipient, attempt, delivery.LastResponse);
        }

        await db.SaveChangesAsync(ct);
    }

    private void Enqueue(long deliveryId, int attempt) =>
        jobs.Enqueue<NotificationJob>(j => j.DeliverAsync(deliveryId, attempt, CancellationToken.None));

    private NotificationDelivery NewDelivery(AuditEvent e, NotificationMessage message, ChannelKind kind, string recipient, string body, int? channelId, string? userId) => new()
    {
        AuditEventId = e.Id,
        TargetId = message.TargetId,
        RunId = message.RunId,
        Event = message.Event,
        ChannelId = channelId,
        UserId = userId,
        Kind = kind,
        Recipient = recipient,
        Subject = message.Subject.Length > 500 ? message.Subject[..500] : message.Subject,
        Body = body,
        State = DeliveryState.Pending,
        CreatedAt = clock.GetUtcNow(),
    };

    private static string Bounded(string text) => text.Length > 2000 ? text[..1999] + "…" : text;
}
