using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace UpgradeConsole.Web.Api;

/// <summary>
/// A personal API token. Only its SHA-256 is stored (the token carries 192 random bits, so a plain
/// hash is enough: nothing to guess, nothing to stretch); the holder sees the token once.
/// </summary>
public sealed class ApiToken
{
    public int Id { get; set; }

    /// <summary>The dashboard user the token acts for.</summary>
    public string UserId { get; set; } = "";

    /// <summary>The owner's e-mail when the token was made (for lists; the live name comes from the user).</summary>
    public string UserEmail { get; set; } = "";

    /// <summary>What the owner called it ("nightly CI").</summary>
    public string Name { get; set; } = "";

    /// <summary>The most the token may do; at use it is also capped by the owner's role of the moment.</summary>
    public string Role { get; set; } = "";

    /// <summary>The first characters of the token, to recognise it in lists and logs.</summary>
    public string Prefix { get; set; } = "";

    /// <summary>Lower-case hex SHA-256 of the whole token.</summary>
    public string Hash { get; set; } = "";

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset? ExpiresAt { get; set; }

    public DateTimeOffset? RevokedAt { get; set; }

    public string? RevokedBy { get; set; }

    public DateTimeOffset? LastUsedAt { get; set; }

    public bool IsUsable(DateTimeOffset now) => RevokedAt is null && (ExpiresAt is null || ExpiresAt > now);
}

internal sealed class ApiTokenConfiguration : IEntityTypeConfiguration<ApiToken>
{
    public void Configure(EntityTypeBuilder<ApiToken> builder)
    {
        builder.ToTable("ApiTokens");
        builder.Property(t => t.UserId).HasMaxLength(450);
        builder.Property(t => t.UserEmail).HasMaxLength(256);
        builder.Property(t => t.Name).HasMaxLength(100);
        builder.Property(t => t.Role).HasMaxLength(20);
        builder.Property(t => t.Prefix).HasMaxLength(16);
        builder.Property(t => t.Hash).HasMaxLength(64);
        builder.HasIndex(t => t.Hash).IsUnique();
        builder.HasIndex(t => t.UserId);
        builder.HasOne<Accounts.AppUser>().WithMany().HasForeignKey(t => t.UserId).OnDelete(DeleteBehavior.Cascade);
    }
}

/// <summary>
/// Token kinds that are not an account role. A <see cref="Metrics"/> token reads <c>/metrics</c> and nothing else (every API
/// policy asks for a role it does not have); only an Admin may make one, and it stops working when its owner is no longer one.
/// </summary>
public static class TokenScopes
{
    public const string Metrics = "Metrics";

    /// <summary>A role, the Metrics scope, or null, spelled canonically.</summary>
    public static string? Normalize(string? role) =>
        string.Equals(role?.Trim(), Metrics, StringComparison.OrdinalIgnoreCase) ? Metrics : Core.Accounts.Roles.Normalize(role);
}
