using System.Text.Json;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Api;

/// <summary>A target as the API shows it: never the private key, only whether one is stored and its fingerprint.</summary>
public sealed record TargetDto(
    int Id, string Name, string Product, string Host, int Port, string SshUser, TargetAuthMethod AuthMethod,
    bool HasStoredKey, string? StoredKeyFingerprint, string? KeyFilePath, string? JumpHost,
    string WorkingDirectory, string EnvFileName, string? PythonPath, string ServerUrl, string? ServiceUser,
    string StopCommand, string StartCommand, string StatusCommand, string RunsDirectory, string BackupDirectory,
    string? PipOptions, bool RequireApproval, HostKeyDto HostKey, string? InstalledVersion,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, Guid Version,
    SshTransport Transport, bool HasKeyPassphrase,
    string? MaintenanceWindows = null, string? TimeZone = null, string? HostCertificateAuthority = null, string? UserCertificate = null,
    int? RequirePassingRehearsalWithinDays = null)
{
    public static TargetDto From(Target t) => new(
        t.Id, t.Name, t.Product, t.Host, t.Port, t.SshUser, t.AuthMethod,
        t.ProtectedPrivateKey is not null, t.PrivateKeyFingerprint, t.KeyFilePath, t.JumpHost,
        t.WorkingDirectory, t.EnvFileName, t.PythonPath, t.ServerUrl, t.ServiceUser,
        t.StopCommand, t.StartCommand, t.StatusCommand, t.RunsDirectory, t.BackupDirectory,
        t.PipOptions, t.RequireApproval,
        new HostKeyDto(t.HostKeyState, t.PinnedKeyType, t.PinnedFingerprint, t.PinnedAt, t.PinnedBy, t.JumpPinnedFingerprint,
            t.HostKeyTrust, t.TrustsHostCertificateAuthority ? t.HostCertificateAuthority : null),
        TargetService.LastDiscovery(t)?.Installed,
        t.CreatedAt, t.UpdatedAt, t.Version,
        t.Transport, t.ProtectedKeyPassphrase is not null,
        t.MaintenanceWindows, t.TimeZone, t.HostCertificateAuthority, t.UserCertificate,
        t.RequirePassingRehearsalWithin is { } within ? (int)Math.Ceiling(within.TotalDays) : null);
}

/// <summary>
/// The host-key state of a target. <c>State</c> is the pinned key's (Unpinned also for a target trusted
/// through a host CA, as before); <c>Trust</c> says what a connection trusts, and <c>CertificateAuthority</c>
/// the host CA's fingerprint when one is trusted.
/// </summary>
public sealed record HostKeyDto(HostKeyState State, string? KeyType, string? Fingerprint, DateTimeOffset? PinnedAt, string? PinnedBy, string? JumpHostFingerprint,
    HostKeyTrust Trust = HostKeyTrust.None, string? CertificateAuthority = null);

public sealed record ScannedKeyDto(string KeyType, string Fingerprint);

public sealed record PinRequest(string? Fingerprint, bool JumpHost = false);

public sealed record PreflightDto(long Id, int TargetId, DateTimeOffset At, string Actor, bool Passed, int Failed, int Warnings, IReadOnlyList<CheckDto> Checks)
{
    public static PreflightDto From(PreflightRun run) => new(run.Id, run.TargetId, run.At, run.Actor, run.Passed, run.Failed, run.Warnings,
        [.. PreflightService.Checks(run).Select(c => new CheckDto(c.Id, c.Title, c.Status, c.Explanation, c.FixText, c.FixUrl))]);
}

public sealed record CheckDto(string Id, string Title, CheckStatus Status, string Explanation, string? Fix, string? FixUrl);

public sealed record FractalUserDto(
    int Id, string Email, string? Username, bool IsActive, bool IsVerified, bool IsSuperuser, int? SettingsId,
    string? ProjectDir, string? SlurmUser, string SlurmAccounts, IReadOnlyList<string> Groups,
    MigrationOutcome Outcome, IReadOnlyList<string> Reasons, string? ProfileName, string Version)
{
    public static FractalUserDto From(UserVerdict v) => new(
        v.User.Id, v.User.Email, v.User.Username, v.User.IsActive, v.User.IsVerified, v.User.IsSuperuser, v.User.SettingsId,
        v.User.ProjectDir, v.User.SlurmUser, v.User.SlurmAccounts, v.User.Groups, v.Outcome, v.Reasons, v.ProfileName, v.User.Version);

    public static FractalUserDto From(FractalUser u) => new(
        u.Id, u.Email, u.Username, u.IsActive, u.IsVerified, u.IsSuperuser, u.SettingsId,
        u.ProjectDir, u.SlurmUser, u.SlurmAccounts, u.Groups, default, [], null, u.Version);
}

public sealed record FractalUsersPage(int Total, int Page, int PageSize, int Migrated, int LeftOut, int Blocks, string Backend, IReadOnlyList<FractalUserDto> Users);

/// <summary>
/// A change to one Fractal user. <see cref="Version"/> is the one the caller read: a change made
/// meanwhile by someone else is refused with 409 and the current values.
/// </summary>
public sealed record FractalUserChange(string? Version, bool? IsActive, bool? IsVerified, string? ProjectDir, string? SlurmUser, bool? CreateSettingsRow);

public sealed record RunbookDto(string Id, string Title, string Product, string? FixedToVersion, bool HasDataMigration, IReadOnlyList<PhaseDefinitionDto> Phases, IReadOnlyList<string> Checklist);

public sealed record PhaseDefinitionDto(string Key, string Title, bool Idempotent, bool PointOfNoReturn);

/// <summary>BatchSize, FailuresAllowed: a rollout over many hosts (Backend.AI's minor runbook); left out, the runbook's default (a quarter of the hosts a batch, stop at the first failure).</summary>
/// <summary>A run to plan. <c>Chain</c>: a version further than one hop away is planned as a chain of runs, this run its first hop (ADR 0028).</summary>
public sealed record PlanRequest(string? Runbook, string? To, string? OAuthClient, bool DataMigration = false, Dictionary<string, string>? Overrides = null, int? BatchSize = null, int? FailuresAllowed = null,
    bool Chain = false);

public sealed record ReasonRequest(string? Reason);

/// <summary>Host: on a phase on many hosts, that failed host alone.</summary>
public sealed record RetryRequest(bool Confirm = false, string? Host = null);

/// <summary>One host of one phase on many hosts.</summary>
public sealed record RunHostDto(string Phase, string Host, Core.Fleet.FleetHostState State, int Attempt, long Lines, bool StepMayBeRunning, int? ExitCode, string? Message, DateTimeOffset UpdatedAt)
{
    public static RunHostDto From(Runbooks.RunHostStep h) => new(h.PhaseKey, h.Host, h.State, h.Attempt, h.LinesBefore + h.LinesStored, h.StepMayBeRunning, h.ExitCode, h.Message, h.UpdatedAt);
}

/// <summary>Failing preflight checks of a run's failed preflight phase, each with the reason it may be passed.</summary>
public sealed record PreflightOverrideRequest(Dictionary<string, string>? Overrides);

public sealed record ChecklistRequest(bool Done = true, string? Note = null);

public sealed record RunSummaryDto(int Id, int TargetId, string RunbookId, string FromVersion, string ToVersion, RunState State, string PlannedBy, DateTimeOffset PlannedAt, DateTimeOffset? StartedAt, DateTimeOffset? EndedAt,
    DateTimeOffset? ScheduledAt = null, string Kind = RunKinds.Run, RunChainDto? Chain = null)
{
    public static RunSummaryDto From(Run r) => new(r.Id, r.TargetId, r.RunbookId, r.FromVersion, r.ToVersion, r.State, r.PlannedBy, r.PlannedAt, r.StartedAt, r.EndedAt,
        r.State == RunState.Planned ? r.ScheduledAt : null, RunKinds.Of(r), RunChainDto.From(r));
}

/// <summary>
/// The chain of runs (ADR 0028) a run is a hop of: which hop of how many, the chain's ends, every hop as approved, the
/// runs before and after (the next once the job created it), and why the chain stopped at this run if it did. Null for a run on its own.
/// </summary>
public sealed record RunChainDto(string Id, int Hop, int Hops, string FromVersion, string ToVersion, IReadOnlyList<ChainHopDto> Path, int? PreviousRunId, int? NextRunId, string? Stopped)
{
    public static RunChainDto? From(Run r, int? nextRunId = null)
    {
        if (r.ChainId is null)
        {
            return null;
        }

        var hops = Chains.RunChain.Hops(r);
        return new(r.ChainId, r.ChainIndex ?? 0, r.ChainLength ?? hops.Count, hops.Count > 0 ? hops[0].From : r.FromVersion, r.ChainTo ?? r.ToVersion,
            [.. hops.Select(ChainHopDto.From)], r.ChainPreviousRunId, nextRunId, r.ChainStop);
    }
}

/// <summary>One hop of a chain: its versions, kind (minor, major) and runbook.</summary>
public sealed record ChainHopDto(string FromVersion, string ToVersion, string Kind, string Runbook)
{
    public static ChainHopDto From(Chains.ChainHop h) => new(h.From, h.To, h.Kind, h.Runbook);
}

/// <summary>A run's kind in the API: an upgrade run, or a rehearsal of one on a copy.</summary>
public static class RunKinds
{
    public const string Run = "run";
    public const string Rehearsal = "rehearsal";

    public static string Of(Run r) => r.RunbookId.EndsWith(UpgradeConsole.Web.Runbooks.RehearsalRunbooks.Suffix, StringComparison.Ordinal) ? Rehearsal : Run;
}

/// <summary>A rehearsal to start: the runbook it rehearses, and optionally a recent verified dump to reuse instead of a fresh one.</summary>
public sealed record RehearsalRequest(string? Runbook, string? To, string? OAuthClient, bool DataMigration = false, double? ReuseDumpWithinHours = null);

/// <summary>
/// When a planned run is to start: ISO 8601 with an offset or Z, or without one (a wall-clock time in the
/// target's time zone).
/// </summary>
public sealed record ScheduleRequest(string? At);

/// <summary>A planned run's scheduled start, with the target's time zone and maintenance windows.</summary>
public sealed record ScheduleDto(DateTimeOffset At, string AtLocal, string? By, string TimeZone, string MaintenanceWindows);

public sealed record RunDto(
    int Id, int TargetId, string RunbookId, string FromVersion, string ToVersion, RunState State, string? Message,
    string PlannedBy, DateTimeOffset PlannedAt, bool RequiresApproval, string? ApprovedBy, DateTimeOffset? ApprovedAt,
    string? StartedBy, DateTimeOffset? StartedAt, DateTimeOffset? EndedAt,
    int PhasesDone, int PhasesTotal, BackupDto? Backup,
    IReadOnlyList<PhaseDto> Phases, IReadOnlyList<ChecklistItemDto> Checklist, long LastLogSequence, string Url,
    ScheduleDto? Schedule = null, string Kind = RunKinds.Run, RunChainDto? Chain = null)
{
    public static RunDto From(Run r, long lastSequence, string baseUrl, UpgradeConsole.Core.Scheduling.MaintenanceWindows? windows = null, int? nextRunId = null)
    {
        var phases = r.Phases.OrderBy(p => p.Index).ToList();
        var counted = phases.Where(p => !p.IsRollback && p.State != PhaseState.Skipped).ToList();
        return new(r.Id, r.TargetId, r.RunbookId, r.FromVersion, r.ToVersion, r.State, r.Message,
            r.PlannedBy, r.PlannedAt, r.RequiresApproval, r.ApprovedBy, r.ApprovedAt, r.StartedBy, r.StartedAt, r.EndedAt,
            counted.Count(p => p.State is PhaseState.Succeeded or PhaseState.MarkedDone), counted.Count,
            r.BackupPath is null ? null : new BackupDto(r.BackupPath, r.BackupSize, r.BackupSha256, r.BackupMilliseconds),
            [.. phases.Select(PhaseDto.From)],
            [.. r.Checklist.OrderBy(c => c.Index).Select(c => new ChecklistItemDto(c.Id, c.Text, c.Done, c.DoneBy, c.DoneAt, c.Note))],
            lastSequence, $"{baseUrl}/runs/{r.Id}",
            r is { State: RunState.Planned, ScheduledAt: { } at } && windows is not null
                ? new ScheduleDto(at, windows.Local(at), r.ScheduledBy, windows.Zone.Id, windows.Describe())
                : null,
            RunKinds.Of(r), RunChainDto.From(r, nextRunId));
    }
}

public sealed record PhaseDto(int Index, string Key, string Title, PhaseState State, bool IsRollback, int Attempt, DateTimeOffset? StartedAt, DateTimeOffset? EndedAt, int? ExitCode, string? Message)
{
    public static PhaseDto From(RunPhase p) => new(p.Index, p.Key, p.Title, p.State, p.IsRollback, p.Attempt, p.StartedAt, p.EndedAt, p.ExitCode, p.Message);
}

public sealed record ChecklistItemDto(int Id, string Text, bool Done, string? DoneBy, DateTimeOffset? DoneAt, string? Note);

public sealed record BackupDto(string Path, long? Size, string? Sha256, long? Milliseconds);

/// <summary>A run just planned, with the plan it was made from.</summary>
public sealed record PlannedRunDto(RunDto Run, PlanDto Plan);

/// <summary>Everything the plan page shows before a run starts (secrets masked).</summary>
public sealed record PlanDto(
    int TargetId, string Runbook, string? FromVersion, string ToVersion, IReadOnlyList<PlannedPhaseDto> Phases,
    EnvMigrationDto? EnvFile, PlanUsersDto Users, long? DatabaseSize, string BackupDirectory, double? ExpectedSeconds,
    PreflightSummaryDto? Preflight, RehearsalSummaryDto? LatestRehearsal = null, IReadOnlyList<ChainHopDto>? Chain = null)
{
    public static PlanDto From(Plan plan) => new(
        plan.Target!.Id, plan.Runbook!.Id, plan.FromVersion, plan.ToVersion,
        [.. plan.Phases.Select(p => new PlannedPhaseDto(p.Definition.Key, p.Definition.Title, p.Definition.Description, p.Commands, p.Chosen,
            p.Definition.Idempotent, p.Definition.PointOfNoReturn, p.Definition.RollbackText))],
        plan.EnvMigration is { } env ? new EnvMigrationDto(
            [.. env.Changes.Select(c => new EnvChangeDto(c.Kind, c.Key, c.NewKey, c.Reason))], env.Warnings, env.Refusals, plan.EnvDiff) : null,
        new PlanUsersDto(
            plan.Users.Count(u => u.Outcome == MigrationOutcome.Migrated), plan.Users.Count(u => u.Outcome == MigrationOutcome.LeftOut), plan.Users.Count(u => u.Outcome == MigrationOutcome.Blocks),
            [.. plan.Users.Where(u => u.Outcome == MigrationOutcome.LeftOut).Select(u => u.User.Email)],
            [.. plan.Users.Where(u => u.Outcome == MigrationOutcome.Blocks).Select(u => u.User.Email)]),
        plan.DatabaseSize, plan.BackupDirectory, plan.ExpectedDuration?.TotalSeconds,
        plan.Preflight is { } p ? new PreflightSummaryDto(p.Id, p.At, p.Passed, p.Failed, p.Warnings) : null,
        plan.LatestRehearsal is { } r ? RehearsalSummaryDto.From(r) : null,
        plan.Chain.Count > 0 ? [.. plan.Chain.Select(ChainHopDto.From)] : null);
}

/// <summary>The latest rehearsal of the plan's runbook on the target: when, which dump, outcome, duration, each phase's.</summary>
public sealed record RehearsalSummaryDto(int Run, RunState State, bool Passed, DateTimeOffset? StartedAt, DateTimeOffset? EndedAt, double? Seconds, string? Dump, string? Message,
    IReadOnlyList<RehearsedPhaseDto> Phases)
{
    public static RehearsalSummaryDto From(UpgradeConsole.Web.Rehearsals.RehearsalSummary r) => new(r.RunId, r.State, r.Passed, r.StartedAt, r.EndedAt, r.Duration?.TotalSeconds, r.DumpPath, r.Message,
        [.. r.Phases.Select(p => new RehearsedPhaseDto(p.Key, p.Title, p.State, p.Duration?.TotalSeconds, p.Message))]);
}

public sealed record RehearsedPhaseDto(string Key, string Title, PhaseState State, double? Seconds, string? Message);

public sealed record PlannedPhaseDto(string Key, string Title, string Description, string? Commands, bool Chosen, bool Idempotent, bool PointOfNoReturn, string? Rollback);

public sealed record EnvMigrationDto(IReadOnlyList<EnvChangeDto> Changes, IReadOnlyList<string> Warnings, IReadOnlyList<string> Refusals, string? Diff);

public sealed record EnvChangeDto(string Kind, string Key, string? NewKey, string Reason);

public sealed record PlanUsersDto(int Migrated, int LeftOut, int Blocking, IReadOnlyList<string> LeftOutUsers, IReadOnlyList<string> BlockingUsers);

public sealed record PreflightSummaryDto(long Id, DateTimeOffset At, bool Passed, int Failed, int Warnings);

public sealed record AuditEventDto(long Sequence, DateTimeOffset At, string Actor, string Action, int? TargetId, string? Subject, JsonElement Details, string PreviousHash, string Hash);

public sealed record AuditPage(IReadOnlyList<AuditEventDto> Events, long? NextBefore);

public sealed record AuditVerifyDto(bool Holds, long Events, long? BrokenAt, string? Problem, string HeadHash, string Message, bool Full, long Walked);

public sealed record LogLineDto(long Seq, int Phase, DateTimeOffset At, string Text);
