using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using UpgradeConsole.Core.EnvFiles;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Notifications;

/// <summary>One notification as composed once for every recipient: subject, text, JSON summary (all masked).</summary>
public sealed record NotificationMessage(NotificationEvents Event, int TargetId, int? RunId, string Subject, string Text, JsonObject Summary);

/// <summary>
/// Reads which notifications an audit event means (a run's state change, a host key change, a preflight newly
/// failing) and writes them. Everything that leaves goes through the run log's masking with the secrets the
/// dashboard holds (SMTP password, webhook secrets) and the env-file rule for KEY=value lines.
/// </summary>
public sealed class NotificationComposer(AppDbContext db, IDataProtectionProvider protection, IOptionsMonitor<SmtpOptions> smtp, IOptionsMonitor<NotificationOptions> options)
{
    /// <summary>The audit actions that may mean a notification (the listener enqueues nothing for the rest).</summary>
    public static readonly IReadOnlySet<string> Actions = new HashSet<string>(StringComparer.Ordinal)
    {
        "run.plan", "run.start", "run.state", "run.rollback", "run.checklist", "target.hostkey-mismatch", "preflight.run",
    };

    public const string SecretPurpose = "UpgradeConsole.Notifications.WebhookSecret.v1";

    public IDataProtector Secrets => protection.CreateProtector(SecretPurpose);

    /// <summary>The events <paramref name="e"/> means (none for most).</summary>
    public async Task<IReadOnlyList<NotificationEvents>> KindsOfAsync(AuditEvent e, CancellationToken ct)
    {
        if (e.TargetId is null || !Actions.Contains(e.Action))
        {
            return [];
        }

        var details = JsonNode.Parse(e.Details) as JsonObject ?? [];
        var state = (string?)details["state"] ?? (string?)details["runState"];
        switch (e.Action)
        {
            case "run.plan":
                var runId = RunIdOf(details);
                var requiresApproval = runId is not null && await db.Runs.AsNoTracking().AnyAsync(r => r.Id == runId && r.RequiresApproval, ct);
                return requiresApproval ? [NotificationEvents.RunPlanned, NotificationEvents.WaitingForApproval] : [NotificationEvents.RunPlanned];
            case "run.start":
                return [NotificationEvents.RunStarted];
            case "target.hostkey-mismatch":
                return [NotificationEvents.HostKeyChanged];
            case "preflight.run":
                return await NewlyFailingAsync(e.TargetId.Value, details, ct) ? [NotificationEvents.PreflightNewlyFailing] : [];
        }

        // run.state (the driver), run.rollback (nothing to undo), run.checklist (the last tick).
        NotificationEvents? kind = state switch
        {
            nameof(RunState.WaitingForChecklist) when e.Action == "run.state" => NotificationEvents.WaitingForChecklist,
            nameof(RunState.Succeeded) => NotificationEvents.RunSucceeded,
            nameof(RunState.RolledBack) => NotificationEvents.RolledBack,
            nameof(RunState.Failed) or nameof(RunState.RollbackFailed) when e.Action == "run.state" => NotificationEvents.PhaseFailed,
            nameof(RunState.NeedsAttention) when e.Action == "run.state" => NotificationEvents.NeedsAttention,
            _ => null,
        };
        return kind is { } k ? [k] : [];
    }

    /// <summary>A check fails now that did not fail in the target's preflight before this one.</summary>
    private async Task<bool> NewlyFailingAsync(int targetId, JsonObject details, CancellationToken ct)
    {
        var failing = (details["failedChecks"] as JsonArray ?? []).Select(n => (string?)n).OfType<string>().ToHashSet(StringComparer.Ordinal);
        if (failing.Count == 0 || details["id"] is not JsonValue idValue || !idValue.TryGetValue<long>(out var id))
        {
            return false;
        }

        var previous = await db.PreflightRuns.AsNoTracking().Where(p => p.TargetId == targetId && p.Id < id).OrderByDescending(p => p.Id).FirstOrDefaultAsync(ct);
        var before = previous is null ? [] : Fractal.PreflightService.Checks(previous)
            .Where(c => c.Status == Core.Fractal.CheckStatus.Fail).Select(c => c.Id).ToHashSet(StringComparer.Ordinal);
        return failing.Any(c => !before.Contains(c));
    }

    private static int? RunIdOf(JsonObject details) =>
        details["run"] is JsonValue v && v.TryGetValue<int>(out var id) ? id : null;

    /// <summary>The notification of <paramref name="kind"/> for <paramref name="e"/>: the run's summary and a link.</summary>
    public async Task<NotificationMessage> ComposeAsync(AuditEvent e, NotificationEvents kind, CancellationToken ct)
    {
        var targetId = e.TargetId!.Value;
        var target = await db.Targets.AsNoTracking().FirstOrDefaultAsync(t => t.Id == targetId, ct);
        var targetName = target?.Name ?? $"target {targetId}";
        var details = JsonNode.Parse(e.Details) as JsonObject ?? [];
        var runId = RunIdOf(details);
        var run = runId is null ? null : await db.Runs.AsNoTracking().Include(r => r.Phases).FirstOrDefaultAsync(r => r.Id == runId, ct);
        var secrets = await SecretsAsync(targetId, ct);
        string Mask(string? text) => MaskText(text ?? "", secrets);

        var baseUrl = (options.CurrentValue.PublicUrl ?? "").TrimEnd('/');
        var link = run is not null ? $"{baseUrl}/runs/{run.Id}" : e.Action == "preflight.run" ? $"{baseUrl}/targets/{targetId}/preflight" : $"{baseUrl}/targets/{targetId}";
        var title = NotificationKinds.Title(kind);
        var summary = new JsonObject
        {
            ["event"] = NotificationKinds.Name(kind),
            ["title"] = title,
            ["at"] = e.At.ToString("O", CultureInfo.InvariantCulture),
            ["auditEvent"] = e.Id,
            ["actor"] = e.Actor,
            ["target"] = new JsonObject { ["id"] = targetId, ["name"] = targetName },
            ["link"] = link,
        };

        var text = new StringBuilder();
        string subject;
        if (run is not null)
        {
            var stopped = RunStateMachine.StoppedPhase(run);
            var current = RunStateMachine.CurrentPhase(run);
            summary["run"] = new JsonObject
            {
                ["id"] = run.Id,
                ["runbook"] = run.RunbookId,
                ["from"] = run.FromVersion,
                ["to"] = run.ToVersion,
                ["state"] = run.State.ToString(),
                ["message"] = run.Message is null ? null : Mask(run.Message),
                ["plannedBy"] = run.PlannedBy,
                ["approvedBy"] = run.ApprovedBy,
                ["startedBy"] = run.StartedBy,
                ["phase"] = (stopped ?? current) is { } p ? new JsonObject { ["key"] = p.Key, ["title"] = p.Title, ["state"] = p.State.ToString(), ["message"] = p.Message is null ? null : Mask(p.Message) } : null,
            };
            subject = $"[{targetName}] Run {run.Id}: {title} ({run.FromVersion} → {run.ToVersion})";
            text.Append(CultureInfo.InvariantCulture, $"{title}: run {run.Id} on {targetName}, {run.RunbookId} {run.FromVersion} → {run.ToVersion}, now {run.State}.");
            if (run.Message is not null)
            {
                text.Append(' ').Append(Mask(run.Message));
            }
        }
        else if (kind == NotificationEvents.HostKeyChanged)
        {
            summary["pinnedFingerprint"] = (string?)details["pinnedFingerprint"];
            subject = $"[{targetName}] Host key changed: connections blocked";
            text.Append(CultureInfo.InvariantCulture, $"{title}: {targetName} no longer presents its pinned host key ({(string?)details["pinnedFingerprint"]}); the dashboard blocks connections until an Admin pins a key again.");
        }
        else
        {
            var failed = (details["failedChecks"] as JsonArray ?? []).Select(n => (string?)n).OfType<string>().ToList();
            summary["failedChecks"] = new JsonArray(failed.Select(f => (JsonNode?)JsonValue.Create(f)).ToArray());
            subject = $"[{targetName}] Preflight newly failing";
            text.Append(CultureInfo.InvariantCulture, $"{title}: the preflight of {targetName} fails: {string.Join(", ", failed)}.");
        }

        // The link after the masking, on a line of its own: a message whose last line is KEY=value (masked to its end)
        // would otherwise swallow it.
        var masked = Mask(text.ToString()) + "\n" + link;
        summary["text"] = masked;
        return new NotificationMessage(kind, targetId, run?.Id, Mask(subject), masked, summary);
    }

    /// <summary>The webhook body: the summary; Slack/Mattermost read its <c>text</c>, which stays only when asked for.</summary>
    public static string WebhookBody(NotificationMessage message, bool slackText)
    {
        var body = (JsonObject)message.Summary.DeepClone();
        if (!slackText)
        {
            body["summary"] = body["text"]?.DeepClone();
            body.Remove("text");
        }

        return body.ToJsonString(JsonSerializerOptions.Web);
    }

    /// <summary>The run log's masking with the dashboard's own secrets, then the env file's rule for KEY=value lines.</summary>
    public static string MaskText(string text, IReadOnlyCollection<string> secrets)
    {
        var masked = RunLogWriter.Masked(text, secrets);
        return string.Join('\n', masked.Split('\n').Select(EnvMigrator.MaskLine));
    }

    /// <summary>The secrets the dashboard holds that a notification about the target could carry by mistake.</summary>
    public async Task<IReadOnlyCollection<string>> SecretsAsync(int targetId, CancellationToken ct)
    {
        var secrets = new List<string>();
        if (smtp.CurrentValue.Password is { Length: > 0 } password)
        {
            secrets.Add(password);
        }

        var protector = Secrets;
        foreach (var sealedSecret in await db.Set<NotificationChannel>().AsNoTracking()
            .Where(c => c.TargetId == targetId && c.ProtectedSecret != null).Select(c => c.ProtectedSecret!).ToListAsync(ct))
        {
            secrets.Add(protector.Unprotect(sealedSecret));
        }

        // Longest first: a secret containing another is masked whole.
        return secrets.Distinct(StringComparer.Ordinal).OrderByDescending(s => s.Length).ToList();
    }
}
