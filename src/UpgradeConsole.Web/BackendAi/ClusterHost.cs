using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.BackendAi;

/// <summary>
/// One host of a Backend.AI cluster target: its roles, its own SSH address and pinned host key (nothing connects
/// to it before a key is pinned; another key blocks it), and where its component lives. It logs in with the
/// cluster target's key (stored key or key file) as <see cref="User"/>.
/// </summary>
public sealed class ClusterHost
{
    public int Id { get; set; }

    public int TargetId { get; set; }

    /// <summary>The components it runs, comma-separated in <see cref="Core.BackendAi.ClusterRoles.All"/> order (<c>manager,storage-proxy</c>).</summary>
    public string Roles { get; set; } = "";

    public string Host { get; set; } = "";

    public int Port { get; set; } = 22;

    public string User { get; set; } = "";

    /// <summary>The component's Python environment: a venv directory or its Python.</summary>
    public string PythonEnv { get; set; } = "";

    /// <summary>The component's configuration file (manager.toml, agent.toml, …).</summary>
    public string ConfigPath { get; set; } = "";

    public string StopCommand { get; set; } = "";

    public string StartCommand { get; set; } = "";

    public string StatusCommand { get; set; } = "";

    public HostKeyState HostKeyState { get; set; }

    public string? PinnedKeyType { get; set; }

    public string? PinnedKey { get; set; }

    public string? PinnedFingerprint { get; set; }

    public DateTimeOffset? PinnedAt { get; set; }

    public string? PinnedBy { get; set; }

    public DateTimeOffset? MismatchSeenAt { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public IReadOnlyList<string> RoleList => Roles.Split(',', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The host runs the manager (the cluster's entry point, its database's owner).</summary>
    public bool IsManager => RoleList.Contains(Core.BackendAi.ClusterRoles.Manager);

    /// <summary>What a step on this host needs of it (its Python, configuration, service commands), as the scripts' environment.</summary>
    public Core.BackendAi.BackendAiHostStep Step => new(RoleList, PythonEnv, ConfigPath, StopCommand, StartCommand, StatusCommand);

    public string Address => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}

internal sealed class ClusterHostConfiguration : IEntityTypeConfiguration<ClusterHost>
{
    public void Configure(EntityTypeBuilder<ClusterHost> builder)
    {
        builder.ToTable("ClusterHosts");
        // No foreign key: targets are soft-deleted (their rows stay), and a host is only ever read through its target.
        builder.HasIndex(h => new { h.TargetId, h.Host, h.Port }).IsUnique();
        builder.Property(h => h.Roles).HasMaxLength(200);
        builder.Property(h => h.Host).HasMaxLength(253);
        builder.Property(h => h.User).HasMaxLength(64);
        builder.Property(h => h.PythonEnv).HasMaxLength(1000);
        builder.Property(h => h.ConfigPath).HasMaxLength(1000);
        builder.Property(h => h.StopCommand).HasMaxLength(2000);
        builder.Property(h => h.StartCommand).HasMaxLength(2000);
        builder.Property(h => h.StatusCommand).HasMaxLength(2000);
        builder.Property(h => h.HostKeyState).HasConversion<string>().HasMaxLength(20);
        builder.Property(h => h.PinnedKeyType).HasMaxLength(100);
        builder.Property(h => h.PinnedFingerprint).HasMaxLength(100);
        builder.Property(h => h.PinnedBy).HasMaxLength(256);
    }
}
