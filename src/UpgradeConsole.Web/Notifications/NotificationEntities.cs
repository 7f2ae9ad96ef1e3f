using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace UpgradeConsole.Web.Notifications;

public enum ChannelKind
{
    Webhook,
    Email,
}

/// <summary>
/// Where a target's notifications go, set by an Admin: a webhook (URL, per-webhook signing secret) or an
/// e-mail recipient, each with the events it wants.
/// </summary>
public sealed class NotificationChannel
{
    public int Id { get; set; }

    public int TargetId { get; set; }

    public ChannelKind Kind { get; set; }

    public string Name { get; set; } = "";

    /// <summary>The webhook's URL or the recipient's e-mail address.</summary>
    public string Address { get; set; } = "";

    public NotificationEvents Events { get; set; }

    /// <summary>Webhooks: add a Slack/Mattermost-compatible <c>text</c> field to the body.</summary>
    public bool SlackText { get; set; }

    /// <summary>Webhooks: the signing secret, encrypted with Data Protection (like the targets' keys); never shown back.</summary>
    public string? ProtectedSecret { get; set; }

    public bool Enabled { get; set; } = true;

    public string CreatedBy { get; set; } = "";

    public DateTimeOffset CreatedAt { get; set; }

    public Guid Version { get; set; } = Guid.NewGuid();
}

/// <summary>Which events of a target (or, with no target, of every target) reach a user by e-mail: their own choice.</summary>
public sealed class NotificationPreference
{
    public int Id { get; set; }

    public string UserId { get; set; } = "";

    /// <summary>Null: every target.</summary>
    public int? TargetId { get; set; }

    public NotificationEvents Events { get; set; }
}

public enum DeliveryState
{
    Pending,
    Retrying,
    Delivered,
    Failed,
}

/// <summary>One notification to one channel or person: what was sent, each attempt's last answer. The delivery log.</summary>
public sealed class NotificationDelivery
{
    public long Id { get; set; }

    /// <summary>The audit event that caused it (at most one delivery per event, kind and recipient).</summary>
    public long AuditEventId { get; set; }

    public int? TargetId { get; set; }

    public int? RunId { get; set; }

    public NotificationEvents Event { get; set; }

    public int? ChannelId { get; set; }

    public string? UserId { get; set; }

    public ChannelKind Kind { get; set; }

    /// <summary>The URL or the e-mail address it goes to.</summary>
    public string Recipient { get; set; } = "";

    public string Subject { get; set; } = "";

    /// <summary>Webhooks: the JSON body sent (signed at each attempt); e-mail: the text. Masked.</summary>
    public string Body { get; set; } = "";

    public DeliveryState State { get; set; }

    public int Attempts { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset? LastAttemptAt { get; set; }

    public DateTimeOffset? NextAttemptAt { get; set; }

    /// <summary>The HTTP status of the last attempt (webhooks).</summary>
    public int? LastStatus { get; set; }

    /// <summary>The last answer (the start of the response body, or the error), masked.</summary>
    public string? LastResponse { get; set; }
}

internal sealed class NotificationChannelConfiguration : IEntityTypeConfiguration<NotificationChannel>
{
    public void Configure(EntityTypeBuilder<NotificationChannel> builder)
    {
        builder.ToTable("NotificationChannels");
        builder.Property(c => c.Kind).HasConversion<string>().HasMaxLength(20);
        builder.Property(c => c.Name).HasMaxLength(100);
        builder.Property(c => c.Address).HasMaxLength(2000);
        builder.Property(c => c.CreatedBy).HasMaxLength(256);
        builder.Property(c => c.Version).IsConcurrencyToken();
        builder.HasIndex(c => c.TargetId);
        builder.HasOne<Targets.Target>().WithMany().HasForeignKey(c => c.TargetId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class NotificationPreferenceConfiguration : IEntityTypeConfiguration<NotificationPreference>
{
    public void Configure(EntityTypeBuilder<NotificationPreference> builder)
    {
        builder.ToTable("NotificationPreferences");
        builder.Property(p => p.UserId).HasMaxLength(450);
        builder.HasIndex(p => new { p.UserId, p.TargetId }).IsUnique();
        builder.HasOne<Accounts.AppUser>().WithMany().HasForeignKey(p => p.UserId).OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<Targets.Target>().WithMany().HasForeignKey(p => p.TargetId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class NotificationDeliveryConfiguration : IEntityTypeConfiguration<NotificationDelivery>
{
    public void Configure(EntityTypeBuilder<NotificationDelivery> builder)
    {
        builder.ToTable("NotificationDeliveries");
        builder.Property(d => d.Kind).HasConversion<string>().HasMaxLength(20);
        builder.Property(d => d.State).HasConversion<string>().HasMaxLength(20);
        builder.Property(d => d.Recipient).HasMaxLength(2000);
        builder.Property(d => d.Subject).HasMaxLength(500);
        builder.Property(d => d.UserId).HasMaxLength(450);
        builder.Property(d => d.LastResponse).HasMaxLength(2000);
        // A second delivery of the dispatch job finds its rows already there.
        builder.HasIndex(d => new { d.AuditEventId, d.Event, d.Kind, d.Recipient }).IsUnique();
        builder.HasIndex(d => new { d.ChannelId, d.Id });
        builder.HasIndex(d => d.TargetId);
        // Deliveries outlive a removed channel or target as a log; only the channel's id is kept.
    }
}
