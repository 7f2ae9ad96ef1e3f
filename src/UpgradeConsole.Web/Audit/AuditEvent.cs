using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using UpgradeConsole.Core.Audit;

namespace UpgradeConsole.Web.Audit;

/// <summary>One append-only audit event. The application never updates or deletes these rows.</summary>
public sealed class AuditEvent
{
    /// <summary>Position in the chain (1, 2, 3, …).</summary>
    public long Id { get; set; }

    public DateTimeOffset At { get; set; }

    /// <summary>Who acted: a user's e-mail, or "system".</summary>
    public string Actor { get; set; } = "";

    /// <summary>What happened, e.g. <c>target.create</c>, <c>target.pin</c>, <c>account.login-failed</c>.</summary>
    public string Action { get; set; } = "";

    public int? TargetId { get; set; }

    /// <summary>What it happened to (a user, a key fingerprint, a run), in words.</summary>
    public string? Subject { get; set; }

    /// <summary>JSON with the particulars (before/after values, reasons). Never secrets.</summary>
    public string Details { get; set; } = "{}";

    public string PreviousHash { get; set; } = "";

    public string Hash { get; set; } = "";

    internal AuditRecord ToRecord() => new(Id, At, Actor, Action, TargetId, Subject, Details);
}

internal sealed class AuditEventConfiguration : IEntityTypeConfiguration<AuditEvent>
{
    public void Configure(EntityTypeBuilder<AuditEvent> builder)
    {
        builder.ToTable("AuditEvents");
        // Ids are assigned by the writer (the chain position), not by the database.
        builder.Property(e => e.Id).ValueGeneratedNever();
        builder.Property(e => e.Actor).HasMaxLength(256);
        builder.Property(e => e.Action).HasMaxLength(100);
        builder.Property(e => e.Subject).HasMaxLength(500);
        builder.Property(e => e.PreviousHash).HasMaxLength(64);
        builder.Property(e => e.Hash).HasMaxLength(64);
        builder.HasIndex(e => e.At);
        builder.HasIndex(e => e.TargetId);
        builder.HasIndex(e => e.Action);
    }
}
