using Microsoft.AspNetCore.DataProtection;
using System.Net.Mail;
using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Notifications;

/// <summary>What a page or the API sends to make or change a channel; null fields stay as they are on a change.</summary>
public sealed record ChannelInput(string? Name, string? Address, IReadOnlyList<string>? Events, bool? SlackText = null, bool? Enabled = null, string? Secret = null);

/// <summary>A channel change: done (with the webhook's secret when it was generated now: shown once), or refused.</summary>
public sealed record ChannelResult(NotificationChannel? Channel, string? Error, string? NewSecret = null, bool NotFound = false);

/// <summary>
/// A target's channels (Admin) and each person's own choice of events. The role held now is checked at every
/// call (an open page may outlive a demotion); every change is audited, secrets never.
/// </summary>
public sealed class NotificationSettings(AppDbContext db, UserAccess access, UserManager<AppUser> users, NotificationComposer composer, AuditLog audit, TimeProvider clock)
{
    public const int MinSecretLength = 16;

    public async Task<IReadOnlyList<NotificationChannel>> ChannelsAsync(int targetId, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Admin);
        return await db.Set<NotificationChannel>().AsNoTracking().Where(c => c.TargetId == targetId).OrderBy(c => c.Kind).ThenBy(c => c.Id).ToListAsync(ct);
    }

    public async Task<NotificationChannel?> ChannelAsync(int targetId, int id, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Admin);
        return await db.Set<NotificationChannel>().AsNoTracking().FirstOrDefaultAsync(c => c.TargetId == targetId && c.Id == id, ct);
    }

    public async Task<ChannelResult> CreateAsync(int targetId, ChannelKind kind, ChannelInput input, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Admin);
        if (!await db.Targets.AnyAsync(t => t.Id == targetId, ct))
        {
            return new ChannelResult(null, "No such target.", NotFound: true);
        }

        var channel = new NotificationChannel { TargetId = targetId, Kind = kind, CreatedBy = actor.Identity?.Name ?? "", CreatedAt = clock.GetUtcNow() };
        if (Apply(channel, input with { Events = input.Events ?? [] }, creating: true) is { } error)
        {
            return new ChannelResult(null, error);
        }

        string? generated = null;
        if (kind == ChannelKind.Webhook && string.IsNullOrEmpty(input.Secret))
        {
            generated = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
            channel.ProtectedSecret = composer.Secrets.Protect(generated);
        }

        db.Add(channel);
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(actor, "notification.channel-create", targetId, channel.Name, Describe(channel), ct);
        return new ChannelResult(channel, null, generated);
    }

    public async Task<ChannelResult> UpdateAsync(int targetId, int id, ChannelInput input, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Admin);
        var channel = await db.Set<NotificationChannel>().FirstOrDefaultAsync(c => c.TargetId == targetId && c.Id == id, ct);
        if (channel is null)
        {
            return new ChannelResult(null, "No such channel.", NotFound: true);
        }

        var before = Describe(channel);
        if (Apply(channel, input, creating: false) is { } error)
        {
            return new ChannelResult(null, error);
        }

        channel.Version = Guid.NewGuid();
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(actor, "notification.channel-edit", targetId, channel.Name, new { before, after = Describe(channel), secretChanged = !string.IsNullOrEmpty(input.Secret) }, ct);
        return new ChannelResult(channel, null);
    }

    public async Task<bool> DeleteAsync(int targetId, int id, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Admin);
        var channel = await db.Set<NotificationChannel>().FirstOrDefaultAsync(c => c.TargetId == targetId && c.Id == id, ct);
        if (channel is null)
        {
            return false;
        }

        db.Remove(channel);
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(actor, "notification.channel-delete", targetId, channel.Name, Describe(channel), ct);
        return true;
    }

    /// <summary>The delivery log of a channel (newest first), or of the whole target with no channel given.</summary>
    public async Task<IReadOnlyList<NotificationDelivery>> DeliveriesAsync(int targetId, int? channelId, int take, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Admin);
        var query = db.Set<NotificationDelivery>().AsNoTracking().Where(d => d.TargetId == targetId);
        if (channelId is { } id)
        {
            query = query.Where(d => d.ChannelId == id);
        }

        return await query.OrderByDescending(d => d.Id).Take(Math.Clamp(take, 1, 500)).ToListAsync(ct);
    }

    /// <summary>The person's own choices: one for every target (TargetId null) and any per target.</summary>
    public async Task<IReadOnlyList<NotificationPreference>> PreferencesAsync(ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Viewer);
        var userId = users.GetUserId(actor);
        return await db.Set<NotificationPreference>().AsNoTracking().Where(p => p.UserId == userId).OrderBy(p => p.TargetId).ToListAsync(ct);
    }

    /// <summary>Sets which events of a target (or, null, of every target) reach the person by e-mail; none removes the choice.</summary>
    public async Task<string?> SetPreferenceAsync(int? targetId, NotificationEvents events, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Viewer);
        var userId = users.GetUserId(actor);
        if (userId is null)
        {
            return "Your account is no longer active. Sign in again.";
        }

        if (targetId is { } t && !await db.Targets.AnyAsync(x => x.Id == t, ct))
        {
            return "No such target.";
        }

        var set = db.Set<NotificationPreference>();
        var preference = await set.FirstOrDefaultAsync(p => p.UserId == userId && p.TargetId == targetId, ct);
        if (preference is null)
        {
            preference = new NotificationPreference { UserId = userId, TargetId = targetId };
            set.Add(preference);
        }

        preference.Events = events & NotificationEvents.All;
        if (targetId is not null && events == NotificationEvents.None)
        {
            // "Nothing from this target" is a choice too: kept, so it still replaces the every-target one.
        }

        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(actor, "notification.preference", targetId, actor.Identity?.Name, new { target = targetId, events = NotificationKinds.Names(preference.Events) }, ct);
        return null;
    }

    /// <summary>Removes the person's choice for one target (the every-target one applies again).</summary>
    public async Task ClearPreferenceAsync(int targetId, ClaimsPrincipal actor, CancellationToken ct)
    {
        await access.RequireAsync(actor, Roles.Viewer);
        var userId = users.GetUserId(actor);
        await db.Set<NotificationPreference>().Where(p => p.UserId == userId && p.TargetId == targetId).ExecuteDeleteAsync(ct);
        await audit.RecordAsync(actor, "notification.preference", targetId, actor.Identity?.Name, new { target = targetId, events = "as for every target" }, ct);
    }

    private string? Apply(NotificationChannel channel, ChannelInput input, bool creating)
    {
        if (input.Name is not null)
        {
            channel.Name = input.Name.Trim();
        }

        if (creating && string.IsNullOrWhiteSpace(channel.Name))
        {
            channel.Name = (input.Address ?? "").Trim();
        }

        if (channel.Name.Length is 0 or > 100)
        {
            return "Give the channel a name of at most 100 characters.";
        }

        if (input.Address is not null || creating)
        {
            var address = (input.Address ?? "").Trim();
            if (channel.Kind == ChannelKind.Webhook)
            {
                if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || address.Length > 2000)
                {
                    return "The webhook's URL must be an absolute http:// or https:// address.";
                }

                if (!string.IsNullOrEmpty(uri.UserInfo))
                {
                    return "Put no user or password in the URL: the body is signed with the webhook's secret instead.";
                }
            }
            else if (!MailAddress.TryCreate(address, out var mail) || mail.Address != address)
            {
                return "Give one e-mail address, like ops@example.org.";
            }

            channel.Address = address;
        }

        if (input.Events is not null)
        {
            var (set, unknown) = NotificationKinds.Parse(input.Events);
            if (unknown is not null)
            {
                return $"Unknown event '{unknown}'. Known: {string.Join(", ", NotificationKinds.All.Select(k => k.Name))}.";
            }

            channel.Events = set;
        }

        if (input.SlackText is { } slack)
        {
            channel.SlackText = slack && channel.Kind == ChannelKind.Webhook;
        }

        if (input.Enabled is { } enabled)
        {
            channel.Enabled = enabled;
        }

        if (!string.IsNullOrEmpty(input.Secret))
        {
            if (channel.Kind != ChannelKind.Webhook)
            {
                return "Only a webhook has a secret.";
            }

            if (input.Secret.Length < MinSecretLength)
            {
                return $"A webhook secret has at least {MinSecretLength} characters.";
            }

            channel.ProtectedSecret = composer.Secrets.Protect(input.Secret);
        }

        return null;
    }

    private static object Describe(NotificationChannel c) => new
    {
        c.Id,
        kind = c.Kind.ToString(),
        c.Name,
        address = c.Address,
        events = NotificationKinds.Names(c.Events),
        c.SlackText,
        c.Enabled,
    };
}
