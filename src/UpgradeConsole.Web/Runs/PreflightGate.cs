using System.Security.Claims;
using System.Text.Json;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Runbooks;

namespace UpgradeConsole.Web.Runs;

/// <summary>
/// The one rule that keeps a run behind its preflight: a gate phase (the preflight) passes only by
/// running to success — with an Admin's written override for each failing check it names — and never
/// by "mark done". The run service applies it to people's actions, the driver before every phase.
/// </summary>
public static class PreflightGate
{
    public const string MarkDoneRefusal =
        "A failed preflight is never marked done: fix what fails and retry it, or an Admin overrides each failing check with a written reason.";

    public const string OverrideNeedsAdmin = "Only an Admin may override a failing preflight check.";

    /// <summary>How long the checks a run's preflight completed before an interruption are kept when the phase is taken over.</summary>
    public static readonly TimeSpan KeepFor = TimeSpan.FromSeconds(60);

    /// <summary>
    /// What a gate phase does, for every product: run the product's preflight again, log every check,
    /// and fail unless each failing check the runbook requires was overridden.
    /// </summary>
    public static PhaseExecution Execution { get; } = PhaseExecution.Builtin(RunAsync);

    /// <summary>Whether the phase is a gate of its runbook.</summary>
    public static bool IsGate(RunbookDefinition? runbook, RunPhase phase) =>
        !phase.IsRollback && runbook?.Phase(phase.Key) is { Gate: true };

    /// <summary>Why <paramref name="phase"/> may not be marked done, or null.</summary>
    public static string? RefuseMarkDone(RunbookDefinition? runbook, RunPhase phase) =>
        IsGate(runbook, phase) ? MarkDoneRefusal : null;

    /// <summary>
    /// The gate before <paramref name="phase"/> that has not passed by running, or null. Rollback
    /// phases are never held back: undoing a change needs no preflight.
    /// </summary>
    public static RunPhase? UnpassedGateBefore(Run run, RunbookDefinition runbook, RunPhase phase) =>
        phase.IsRollback
            ? null
            : run.Phases.Where(p => p.Index < phase.Index && IsGate(runbook, p) && p.State != PhaseState.Succeeded).OrderBy(p => p.Index).FirstOrDefault();

    private static async Task<PhaseOutcome> RunAsync(PhaseContext c)
    {
        var run = c.Run;
        var actor = new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, run.StartedBy ?? "system")], "run"));
        // Taken over after an interruption: a preflight this attempt completed moments ago still holds (nothing
        // of the run has changed the target since), so its results are kept rather than gathered again.
        var kept = c.Recovering && c.AttemptStartedAt is { } since && await c.Product.LatestPreflightAsync(run.TargetId, c.Cancellation) is { } latest
            && latest.At >= since && c.Clock.GetUtcNow() - latest.At <= KeepFor
                ? latest
                : null;
        var result = kept ?? await c.Product.PreflightAsync(run.TargetId, actor, c.Cancellation, forRun: run.Id, onRetry: c.WriteAsync);
        var overrides = JsonSerializer.Deserialize<Dictionary<string, string>>(run.OverridesJson, JsonSerializerOptions.Web) ?? [];
        var failing = new List<string>();
        foreach (var check in PreflightService.Checks(result))
        {
            // A check the runbook never lets through stays failing whatever the run's overrides say.
            var overridden = check.Status == CheckStatus.Fail && overrides.TryGetValue(check.Id, out _) && c.Runbook.RefuseOverride(check.Id) is null;
            var required = c.Runbook.Requires(check.Id);
            await c.WriteAsync($"{(check.Status == CheckStatus.Pass ? "pass" : check.Status == CheckStatus.Warn ? "WARN" : overridden ? "FAIL (overridden)" : required ? "FAIL" : "fail (not required by this runbook)")} {check.Title}: {check.Explanation}" +
                (overridden ? $" — override: {overrides[check.Id]}" : ""));
            if (check.Status == CheckStatus.Fail && !overridden && required)
            {
                failing.Add(check.Title);
            }
        }

        return failing.Count == 0 ? PhaseOutcome.Done() : PhaseOutcome.Failed($"{failing.Count} check(s) fail: {string.Join("; ", failing)}.");
    }
}
