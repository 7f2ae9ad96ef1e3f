using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace UpgradeConsole.Web.Fractal;

/// <summary>A stored preflight: every check, who ran it and when. The run plan shows the latest.</summary>
public sealed class PreflightRun
{
    public long Id { get; set; }

    public int TargetId { get; set; }

    public DateTimeOffset At { get; set; }

    public string Actor { get; set; } = "";

    /// <summary>The checks as JSON (a list of CheckResult).</summary>
    public string ChecksJson { get; set; } = "[]";

    public int Failed { get; set; }

    public int Warnings { get; set; }

    public bool Passed => Failed == 0;
}

internal sealed class PreflightRunConfiguration : IEntityTypeConfiguration<PreflightRun>
{
    public void Configure(EntityTypeBuilder<PreflightRun> builder)
    {
        builder.ToTable("PreflightRuns");
        builder.HasIndex(p => new { p.TargetId, p.At });
        builder.Property(p => p.Actor).HasMaxLength(256);
        builder.Ignore(p => p.Passed);
        builder.HasOne<Targets.Target>().WithMany().HasForeignKey(p => p.TargetId).OnDelete(DeleteBehavior.Cascade);
    }
}
