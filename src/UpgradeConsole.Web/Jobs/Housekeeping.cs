using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Jobs;

/// <summary>How long housekeeping keeps what is no longer needed.</summary>
public sealed class HousekeepingOptions
{
    public const string Section = "Housekeeping";

    /// <summary>API tokens expired or revoked longer ago than this are deleted (their use stays in the audit history).</summary>
    public TimeSpan KeepDeadTokens { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Preflight results older than this are deleted, except each target's latest.</summary>
    public TimeSpan KeepPreflightResults { get; set; } = TimeSpan.FromDays(90);

    /// <summary>A finished run's step directory on its target (scripts, logs, exit codes) is removed this long after the run ended.</summary>
    public TimeSpan KeepStepDirectories { get; set; } = TimeSpan.FromDays(30);
}

/// <summary>The daily clean-up, a recurring Hangfire job (visible and triggerable under /jobs).</summary>
public sealed class Housekeeping(AppDbContext db, IOptions<HousekeepingOptions> options, TimeProvider clock, UpgradeConsole.Web.Audit.AuditLog audit, ILogger<Housekeeping> logger)
{
    public const string JobId = "housekeeping";

    [AutomaticRetry(Attempts = 0)]
    [DisableConcurrentExecution(timeoutInSeconds: 60)]
    [JobDisplayName("Housekeeping: dead API tokens, old preflight results, the whole audit chain verified")]
    public async Task RunAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var tokenCutoff = now - options.Value.KeepDeadTokens;
        // Compared here, not in SQL: SQLite cannot compare DateTimeOffset values, and these lists are short.
        var tokens = await db.ApiTokens.AsNoTracking().Select(t => new { t.Id, t.ExpiresAt, t.RevokedAt }).ToListAsync(ct);
        var deadTokens = tokens.Where(t => t.RevokedAt < tokenCutoff || t.ExpiresAt < tokenCutoff).Select(t => t.Id).ToList();
        var tokensDeleted = deadTokens.Count == 0 ? 0 : await db.ApiTokens.Where(t => deadTokens.Contains(t.Id)).ExecuteDeleteAsync(ct);

        var preflightCutoff = now - options.Value.KeepPreflightResults;
        var preflights = await db.PreflightRuns.AsNoTracking().Select(p => new { p.Id, p.TargetId, p.At }).ToListAsync(ct);
        var latest = preflights.GroupBy(p => p.TargetId).Select(g => g.Max(p => p.Id)).ToHashSet();
        var oldPreflights = preflights.Where(p => p.At < preflightCutoff && !latest.Contains(p.Id)).Select(p => p.Id).ToList();
        var preflightsDeleted = 0;
        foreach (var batch in oldPreflights.Chunk(500))
        {
            preflightsDeleted += await db.PreflightRuns.Where(p => batch.Contains(p.Id)).ExecuteDeleteAsync(ct);
        }

        logger.LogInformation("Housekeeping deleted {Tokens} dead API token(s) and {Preflights} old preflight result(s)", tokensDeleted, preflightsDeleted);

        // The whole chain once a day: everyone else's verifications check only what is new since the last one.
        var chain = await audit.VerifyFullAsync(ct);
        await audit.RecordAsync("system", "audit.verify", details: new { holds = chain.Holds, events = chain.Events, brokenAt = chain.BrokenAt, chain.HeadHash, full = true, walked = chain.Walked }, ct: ct);
        if (!chain.Holds)
        {
            logger.LogError("The daily audit verification found the chain broken: {Verdict}", chain);
        }
    }
}
