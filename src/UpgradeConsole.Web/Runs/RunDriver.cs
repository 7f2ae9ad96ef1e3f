using System.Security.Claims;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.EnvFiles;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Runs;

/// <summary>What a phase ended with.</summary>
public sealed record PhaseOutcome(PhaseState State, string? Message = null, int? ExitCode = null)
{
    public static PhaseOutcome Done(string? message = null) => new(PhaseState.Succeeded, message);

    public static PhaseOutcome Failed(string message, int? exitCode = null) => new(PhaseState.Failed, message, exitCode);
}

/// <summary>
/// Drives a run from its checkpoint: each phase is marked running before it starts and finished
/// after, in the database. After a restart it continues where the checkpoint says, reattaching to a
/// remote step still running; a non-idempotent step whose outcome cannot be known stops the run as
/// NeedsAttention instead of running again.
/// </summary>
public sealed class RunDriver(
    AppDbContext db,
    IServiceScopeFactory scopes,
    FractalAccess access,
    PreflightService preflight,
    AuditLog audit,
    TimeProvider clock,
    ILogger<RunDriver> logger)
{
    public async Task ExecuteAsync(int runId, CancellationToken ct)
    {
        var run = await db.Runs.Include(r => r.Phases).FirstOrDefaultAsync(r => r.Id == runId, ct);
        if (run is null || run.State is not (RunState.Running or RunState.RollingBack))
        {
            return;
        }

        var target = await db.Targets.AsNoTracking().FirstAsync(t => t.Id == run.TargetId, ct);
        var runbook = Runbooks.Find(run.RunbookId) ?? throw new InvalidOperationException($"Unknown runbook {run.RunbookId}.");
        FractalContext context;
        try
        {
            context = await access.OpenAsync(target, ct);
        }
        catch (Exception ex) when (ex is SshConnectionException or HostKeyNotPinnedException or InvalidOperationException or TimeoutException)
        {
            // Not reachable: leave the checkpoint as it is; an operator retries when the target is back.
            await FinishRunAsync(run, run.State == RunState.RollingBack ? RunState.RollbackFailed : RunState.Failed, "The target cannot be reached: " + ex.Message, ct);
            return;
        }

        // The forward to the target's database closes when the phases are done.
        await using var _ = context;
        var log = new RunLogWriter(scopes, run.Id, Secrets(context.Env), clock);
        var phases = new FractalPhases(run, target, context, new RemoteStepEngine(context.Shell, logger: logger), log, db, preflight);
        var rollingBack = run.State == RunState.RollingBack;
        foreach (var phase in run.Phases.Where(p => p.IsRollback == rollingBack).OrderBy(p => p.Index))
        {
            if (phase.State is PhaseState.Succeeded or PhaseState.MarkedDone or PhaseState.Skipped)
            {
                continue;
            }

            if (phase.State is PhaseState.Failed or PhaseState.NeedsAttention)
            {
                // Waits for an operator's decision.
                return;
            }

            if (PreflightGate.UnpassedGateBefore(run, runbook, phase) is { } gate)
            {
                // Whatever let the run get here (a gate marked done before this rule, a hand-edited
                // row), nothing after the preflight runs until the preflight itself passes.
                gate.State = PhaseState.Failed;
                gate.Message = $"The preflight has not passed, so {phase.Title} does not run. {PreflightGate.MarkDoneRefusal}";
                await log.WriteAsync(gate, "── " + gate.Message, ct: ct);
                await log.FlushAsync(ct);
                await audit.RecordAsync("system", "run.phase", run.TargetId, $"run {run.Id}", new { run = run.Id, phase = gate.Key, gate.Attempt, state = gate.State.ToString(), message = gate.Message, rollback = false }, ct);
                await FinishRunAsync(run, RunState.Failed, $"{gate.Title}: {gate.Message}", ct, stayActive: true);
                return;
            }

            var definition = runbook.Phases.FirstOrDefault(p => p.Key == phase.Key);
            if (definition?.Kind == PhaseKind.Manual)
            {
                phase.State = PhaseState.Running;
                phase.StartedAt ??= clock.GetUtcNow();
                await FinishRunAsync(run, RunState.WaitingForChecklist, "Every automatic phase is done; tick the checklist to complete the run.", ct, stayActive: true);
                return;
            }

            var recovering = phase.State == PhaseState.Running;
            phase.State = PhaseState.Running;
            phase.StartedAt ??= clock.GetUtcNow();
            await db.SaveChangesAsync(ct);
            await log.WriteAsync(phase, recovering ? $"── {phase.Title}: continuing after an interruption" : $"── {phase.Title}", ct: ct);

            PhaseOutcome outcome;
            try
            {
                outcome = await phases.RunAsync(phase, definition, recovering, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // The dashboard is stopping: the checkpoint stays "running" and the next start reattaches.
                await log.FlushAsync(CancellationToken.None);
                await db.SaveChangesAsync(CancellationToken.None);
                throw;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogError(ex, "Phase {Phase} of run {Run} failed", phase.Key, run.Id);
                outcome = definition is { Idempotent: false }
                    ? new PhaseOutcome(PhaseState.NeedsAttention, $"{ex.Message} The outcome of this step is unknown and it is never re-run automatically: check the target, then retry, mark it done or roll back.")
                    : PhaseOutcome.Failed(ex.Message);
            }

            await log.WriteAsync(phase, outcome.State == PhaseState.Succeeded ? $"── {phase.Title}: done{(outcome.Message is null ? "" : " · " + outcome.Message)}" : $"── {phase.Title}: {outcome.State}: {outcome.Message}", ct: ct);
            await log.FlushAsync(ct);
            phase.State = outcome.State;
            phase.Message = outcome.Message is null ? null : log.Masked(outcome.Message);
            phase.ExitCode = outcome.ExitCode;
            phase.EndedAt = clock.GetUtcNow();
            await db.SaveChangesAsync(ct);
            await audit.RecordAsync("system", "run.phase", run.TargetId, $"run {run.Id}", new { run = run.Id, phase = phase.Key, phase.Attempt, state = phase.State.ToString(), message = phase.Message, rollback = phase.IsRollback }, ct);
            if (outcome.State != PhaseState.Succeeded)
            {
                var state = rollingBack ? RunState.RollbackFailed : outcome.State == PhaseState.NeedsAttention ? RunState.NeedsAttention : RunState.Failed;
                await FinishRunAsync(run, state, $"{phase.Title}: {phase.Message}", ct, stayActive: true);
                return;
            }
        }

        await FinishRunAsync(run, rollingBack ? RunState.RolledBack : RunState.Succeeded, rollingBack ? "Rolled back." : "Succeeded.", ct);
    }

    private async Task FinishRunAsync(Run run, RunState state, string message, CancellationToken ct, bool stayActive = false)
    {
        run.State = state;
        run.Message = message;
        if (!stayActive)
        {
            run.ActiveTargetId = null;
            run.EndedAt = clock.GetUtcNow();
        }

        run.Version = Guid.NewGuid();
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync("system", "run.state", run.TargetId, $"run {run.Id}", new { run = run.Id, state = state.ToString(), message }, ct);
    }

    /// <summary>Values never to show: the env file's passwords, secrets, keys and tokens.</summary>
    public static IReadOnlyCollection<string> Secrets(IReadOnlyDictionary<string, string?> env) =>
        env.Where(kv => FractalDiscovery.IsSecret(kv.Key) && kv.Value is { Length: >= 4 }).Select(kv => kv.Value!).Distinct().OrderByDescending(s => s.Length).ToList();
}
