using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace UpgradeConsole.Web.Runs;

public enum RunState
{
    /// <summary>Planned, not started (waits for an approval when the target asks for one).</summary>
    Planned,
    Running,

    /// <summary>Every automatic phase is done; people tick the manual checklist.</summary>
    WaitingForChecklist,
    Succeeded,

    /// <summary>A phase failed: retry it, mark it done, roll back or abandon.</summary>
    Failed,

    /// <summary>A non-idempotent step's outcome is unknown; a person decides, nothing re-runs by itself.</summary>
    NeedsAttention,
    RollingBack,
    RolledBack,
    RollbackFailed,
    Abandoned,
}

public enum PhaseState
{
    Pending,
    Running,
    Succeeded,
    Failed,
    NeedsAttention,

    /// <summary>An operator declared it done (with a reason) without it running to success.</summary>
    MarkedDone,
    Skipped,
}

/// <summary>An upgrade of one target by one runbook: a checkpointed state machine.</summary>
public sealed class Run
{
    public int Id { get; set; }

    public int TargetId { get; set; }

    public string RunbookId { get; set; } = "";

    public string FromVersion { get; set; } = "";

    public string ToVersion { get; set; } = "";

    public RunState State { get; set; }

    /// <summary>Equals <see cref="TargetId"/> while the run is active, null after: a unique index allows one active run per target.</summary>
    public int? ActiveTargetId { get; set; }

    public string PlannedBy { get; set; } = "";

    public DateTimeOffset PlannedAt { get; set; }

    public bool RequiresApproval { get; set; }

    public string? ApprovedBy { get; set; }

    public DateTimeOffset? ApprovedAt { get; set; }

    public string? StartedBy { get; set; }

    /// <summary>When a planned run is to start by itself (a Hangfire scheduled job); null: started by a person.</summary>
    public DateTimeOffset? ScheduledAt { get; set; }

    /// <summary>Who scheduled it: the start is theirs, checked again when it is due.</summary>
    public string? ScheduledBy { get; set; }

    /// <summary>The Hangfire job that starts the run at <see cref="ScheduledAt"/>.</summary>
    public string? ScheduleJobId { get; set; }

    public DateTimeOffset? StartedAt { get; set; }

    public DateTimeOffset? EndedAt { get; set; }

    /// <summary>The plan as shown when it was made (JSON, secrets masked).</summary>
    public string PlanJson { get; set; } = "{}";

    /// <summary>Failing preflight checks an Admin overrode, with their reasons (JSON).</summary>
    public string OverridesJson { get; set; } = "{}";

    /// <summary>With several 2.16 OAuth clients: the one 2.17 keeps.</summary>
    public string? OAuthClient { get; set; }

    public string? BackupPath { get; set; }

    public long? BackupSize { get; set; }

    public string? BackupSha256 { get; set; }

    public long? BackupMilliseconds { get; set; }

    /// <summary>The user tables' fingerprint before the upgrade, compared after a rollback.</summary>
    public string? UserTablesChecksum { get; set; }

    /// <summary>Where the env file was kept before the run rewrote it.</summary>
    public string? KeptEnvFile { get; set; }

    public string? Message { get; set; }

    public Guid Version { get; set; } = Guid.NewGuid();

    /// <summary>Names the run's directory on the target, unique across dashboards and database resets.</summary>
    public string RemoteKey { get; set; } = Guid.NewGuid().ToString("N")[..12];

    /// <summary>The run's directory name under the target's step directory.</summary>
    public string RemoteRunId => $"run-{Id}-{RemoteKey}";

    /// <summary>The chain (a run of runs, ADR 0028) this run is a hop of; null for a run on its own. Every hop of one chain shares it.</summary>
    public string? ChainId { get; set; }

    /// <summary>Which hop of its chain this run is (1 for the first); unique within the chain, so a second delivery of the next-hop job cannot make a second run.</summary>
    public int? ChainIndex { get; set; }

    /// <summary>How many hops the chain had when it was planned.</summary>
    public int? ChainLength { get; set; }

    /// <summary>The version the whole chain ends at.</summary>
    public string? ChainTo { get; set; }

    /// <summary>Every hop of the chain as planned and approved (JSON of <see cref="Chains.ChainHop"/>): the next-hop job takes its runbook from here.</summary>
    public string? ChainHopsJson { get; set; }

    /// <summary>The hop before this one (null for the first).</summary>
    public int? ChainPreviousRunId { get; set; }

    /// <summary>Why the chain stopped at this run although nothing of the run itself failed (the next hop could not be planned or started).</summary>
    public string? ChainStop { get; set; }

    public List<RunPhase> Phases { get; set; } = [];

    public List<RunChecklistItem> Checklist { get; set; } = [];

    public bool IsActive => ActiveTargetId is not null;

    /// <summary>
    /// Whether the run may still change: it holds its target, or it has not ended. A rehearsal never holds the target's
    /// slot (ADR 0022), so <see cref="IsActive"/> alone would call it finished from its first second.
    /// </summary>
    public bool MayChange => IsActive || EndedAt is null;
}

public sealed class RunPhase
{
    public int Id { get; set; }

    public int RunId { get; set; }

    /// <summary>Order of execution; rollback phases come after the runbook's.</summary>
    public int Index { get; set; }

    public string Key { get; set; } = "";

    public string Title { get; set; } = "";

    public bool IsRollback { get; set; }

    public PhaseState State { get; set; }

    public int Attempt { get; set; } = 1;

    public DateTimeOffset? StartedAt { get; set; }

    public DateTimeOffset? EndedAt { get; set; }

    public int? ExitCode { get; set; }

    public string? Message { get; set; }

    /// <summary>The remote step directory of the current attempt, once started.</summary>
    public string? StepId { get; set; }

    /// <summary>How far the remote log has been read and stored (byte offset): where a reattach resumes.</summary>
    public long LogOffset { get; set; }

    /// <summary>The Hangfire job last enqueued for this phase (the run page links to it under /jobs).</summary>
    public string? JobId { get; set; }

    /// <summary>The dashboard node that claimed the phase last (see <see cref="RunJob"/>).</summary>
    public string? LeaseOwner { get; set; }

    /// <summary>
    /// Until when <see cref="LeaseOwner"/> holds the phase; renewed by its heartbeat while the phase runs, cleared
    /// when it ends. Null or past: nobody runs it. UTC <see cref="DateTime"/>, not <see cref="DateTimeOffset"/>:
    /// SQLite compares the former in SQL, the claim's condition needs that.
    /// </summary>
    public DateTime? LeaseExpiresAt { get; set; }

    /// <summary>
    /// This attempt of a phase on many hosts retries that one host alone (a person chose it on the run page, the API
    /// or the CLI); null: the whole phase (its failed hosts again, then the rollout goes on).
    /// </summary>
    public string? RetryHost { get; set; }
}

/// <summary>
/// A batch of a run's log lines as stored: consecutive sequence numbers of one phase, masked, joined
/// by '\n' (a line never holds one). One row per batch, not per line: a log of millions of lines is a
/// few hundred rows, written, read and pushed to viewers as whole texts.
/// </summary>
public sealed class RunLogChunk
{
    public long Id { get; set; }

    public int RunId { get; set; }

    /// <summary>The sequence number of the first line (1, 2, 3… within the run, no gaps between chunks).</summary>
    public long FirstSequence { get; set; }

    /// <summary>The sequence number of the last line: <see cref="FirstSequence"/> + lines − 1.</summary>
    public long LastSequence { get; set; }

    public int PhaseIndex { get; set; }

    /// <summary>Where the remote log continues after the chunk (null when its lines came from the dashboard itself).</summary>
    public long? RemoteOffset { get; set; }

    /// <summary>When the chunk's first line arrived (its lines arrived within 100 ms of it).</summary>
    public DateTimeOffset At { get; set; }

    /// <summary>The first line that reads like an error (error, failed, traceback, fatal), found when the chunk is stored.</summary>
    public long? FirstErrorSequence { get; set; }

    public string Text { get; set; } = "";
}

public sealed class RunChecklistItem
{
    public int Id { get; set; }

    public int RunId { get; set; }

    public int Index { get; set; }

    public string Text { get; set; } = "";

    public bool Done { get; set; }

    public string? DoneBy { get; set; }

    public DateTimeOffset? DoneAt { get; set; }

    public string? Note { get; set; }
}

internal sealed class RunConfiguration : IEntityTypeConfiguration<Run>
{
    public void Configure(EntityTypeBuilder<Run> builder)
    {
        builder.ToTable("Runs");
        builder.Property(r => r.State).HasConversion<string>().HasMaxLength(30);
        builder.HasIndex(r => r.ActiveTargetId).IsUnique();
        builder.HasIndex(r => new { r.TargetId, r.PlannedAt });
        builder.Property(r => r.Version).IsConcurrencyToken();
        builder.HasOne<Targets.Target>().WithMany().HasForeignKey(r => r.TargetId).OnDelete(DeleteBehavior.Restrict);
        builder.HasMany(r => r.Phases).WithOne().HasForeignKey(p => p.RunId).OnDelete(DeleteBehavior.Cascade);
        builder.HasMany(r => r.Checklist).WithOne().HasForeignKey(c => c.RunId).OnDelete(DeleteBehavior.Cascade);
        builder.Ignore(r => r.IsActive);
        builder.Ignore(r => r.MayChange);
        builder.Ignore(r => r.RemoteRunId);
        builder.Property(r => r.RemoteKey).HasMaxLength(32);
        builder.Property(r => r.ScheduleJobId).HasMaxLength(64);
        builder.Property(r => r.ChainId).HasMaxLength(32);
        builder.Property(r => r.ChainTo).HasMaxLength(64);
        builder.HasIndex(r => new { r.ChainId, r.ChainIndex }).IsUnique();
    }
}

internal sealed class RunPhaseConfiguration : IEntityTypeConfiguration<RunPhase>
{
    public void Configure(EntityTypeBuilder<RunPhase> builder)
    {
        builder.ToTable("RunPhases");
        builder.Property(p => p.State).HasConversion<string>().HasMaxLength(30);
        builder.HasIndex(p => new { p.RunId, p.Index }).IsUnique();
        builder.Property(p => p.JobId).HasMaxLength(64);
        builder.Property(p => p.LeaseOwner).HasMaxLength(200);
        builder.Property(p => p.RetryHost).HasMaxLength(300);
    }
}

internal sealed class RunLogChunkConfiguration : IEntityTypeConfiguration<RunLogChunk>
{
    public void Configure(EntityTypeBuilder<RunLogChunk> builder)
    {
        builder.ToTable("RunLogChunks");
        builder.HasIndex(l => new { l.RunId, l.FirstSequence }).IsUnique();
        builder.HasIndex(l => new { l.RunId, l.LastSequence }).IsUnique();
        builder.HasOne<Run>().WithMany().HasForeignKey(l => l.RunId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class RunChecklistItemConfiguration : IEntityTypeConfiguration<RunChecklistItem>
{
    public void Configure(EntityTypeBuilder<RunChecklistItem> builder) => builder.ToTable("RunChecklistItems");
}
