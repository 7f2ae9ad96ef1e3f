using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Notifications;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Notifications;

/// <summary>
/// Every event kind of issue 17, one target each: a person who chose only that kind gets it (once) and nothing else of
/// the target; a person who chose every other kind never gets it; a webhook for that kind gets the run's summary (or
/// the target's) and its link, signed; and the secrets a step may have printed into the run's or phase's message (the
/// SMTP password, the webhook's secret, an env file's KEY=value line) are masked in every mail and body. Real events
/// where they are cheap (a start, the driver failing to reach the target, a rollback, a preflight, a changed host key
/// on a real sshd); the driver's other state changes are recorded as the driver records them
/// (<c>run.state</c> with run, state and message), and the table below pins how each audit event maps to kinds.
/// </summary>
public sealed class ChoosingWhichEventsNotifyTests(NotificationRig rig, SshServer ssh) : IClassFixture<NotificationRig>
{
    private const string EnvSecret = "hunter2-from-the-env-file";

    public static TheoryData<NotificationEvents> Kinds => new(NotificationKinds.All.Select(k => k.Event));

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task APersonGetsExactlyTheKindsTheyChose_AndTheWebhookOfTheKindGetsTheSummaryAndLink_WithSecretsMasked(NotificationEvents kind)
    {
        var ct = TestContext.Current.CancellationToken;
        var (targetId, runId) = await TargetForAsync(kind);
        var targetName = await TargetNameAsync(targetId);

        // The chooser wants only this kind from this target; the other person everything but it; the webhook only it.
        await rig.PreferAsync(NotificationRig.Chooser, targetId, kind);
        await rig.PreferAsync(NotificationRig.Other, targetId, NotificationEvents.All & ~kind);
        var hookSecret = $"hook-secret-of-{NotificationKinds.Name(kind)}-0123456789";
        var path = $"/kind/{NotificationKinds.Name(kind)}";
        using (var created = await rig.Admin.PostAsJsonAsync($"/api/v1/targets/{targetId}/webhooks",
            new { name = "chat", url = rig.Receiver.Url(path), events = new[] { NotificationKinds.Name(kind) }, slackText = true, secret = hookSecret }, ct))
        {
            Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync(ct));
        }

        // What a step could print into the run's and its phase's message: the dashboard's own secrets and an env line.
        var leaky = $"pip said: smtp {rig.Smtp.Password}, hook {hookSecret}\nDB_PASSWORD={EnvSecret}";
        if (runId is { } r)
        {
            await UpdateRunAsync(r, run =>
            {
                run.Message = leaky;
                run.Phases.ForEach(p => p.Message = leaky);
            });
        }

        var emitted = await CauseAsync(kind, targetId, runId);
        Assert.Contains(kind, emitted);

        // Settled: one delivery per kind that happened to the one person who chose it, and one to the webhook.
        var deliveries = await rig.SettledAsync(targetId, emitted.Count + 1);
        Assert.Equal(emitted.Order(), deliveries.Where(d => d.Kind == ChannelKind.Email).Select(d => d.Event).Order());

        var chosen = rig.MailsTo(NotificationRig.Chooser, targetName);
        var title = NotificationKinds.Title(kind);
        var mail = Assert.Single(chosen);
        Assert.StartsWith(title + ":", mail, StringComparison.Ordinal);
        var others = rig.MailsTo(NotificationRig.Other, targetName);
        Assert.Equal(emitted.Count - 1, others.Count);
        Assert.DoesNotContain(others, m => m.StartsWith(title + ":", StringComparison.Ordinal));

        // The webhook: once, signed with its secret, the kind, the summary and the link.
        var hook = Assert.Single(rig.Receiver.At(path));
        Assert.Equal("sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(hookSecret), hook.Body)), hook.Headers["X-UpgradeConsole-Signature"]);
        Assert.Equal(NotificationKinds.Name(kind), hook.Headers["X-UpgradeConsole-Event"]);
        var body = JsonDocument.Parse(hook.Body).RootElement;
        Assert.Equal(NotificationKinds.Name(kind), body.GetProperty("event").GetString());
        Assert.Equal(targetId, body.GetProperty("target").GetProperty("id").GetInt32());
        Assert.Equal(targetName, body.GetProperty("target").GetProperty("name").GetString());
        var link = body.GetProperty("link").GetString()!;
        Assert.StartsWith(title + ":", body.GetProperty("text").GetString(), StringComparison.Ordinal);
        Assert.EndsWith(link, body.GetProperty("text").GetString(), StringComparison.Ordinal);
        Assert.Contains(link, mail, StringComparison.Ordinal);
        if (runId is { } id)
        {
            Assert.Equal($"{NotificationRig.PublicUrl}/runs/{id}", link);
            var run = body.GetProperty("run");
            Assert.Equal(id, run.GetProperty("id").GetInt32());
            Assert.Equal("2.16.6", run.GetProperty("from").GetString());
            Assert.Equal("2.16.7", run.GetProperty("to").GetString());
            Assert.False(string.IsNullOrEmpty(run.GetProperty("state").GetString()));
            Assert.Contains(RunLogWriter.Mask, run.GetProperty("phase").GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        else
        {
            Assert.Equal(kind == NotificationEvents.PreflightNewlyFailing ? $"{NotificationRig.PublicUrl}/targets/{targetId}/preflight" : $"{NotificationRig.PublicUrl}/targets/{targetId}", link);
            Assert.False(body.TryGetProperty("run", out _));
        }

        // Nothing secret in any mail or body about this target.
        var everything = chosen.Concat(others).Append(PlainText(hook.Body)).Concat(deliveries.Select(d => d.Body + d.Subject)).ToList();
        foreach (var secret in new[] { rig.Smtp.Password, hookSecret, EnvSecret })
        {
            Assert.DoesNotContain(everything, text => text.Contains(secret, StringComparison.Ordinal));
        }
    }

    /// <summary>
    /// How the product maps audit events (as the services and the driver record them) to kinds; what is not in this
    /// table means nothing. Run through the composer against the dashboard's own database (approval, earlier preflights).
    /// </summary>
    public static TheoryData<string, string, string, string> Mapping => new()
    {
        // action, details (run = the seeded run), setup, expected kinds
        { "run.plan", """{"run":RUN,"runbook":"fractal-release","from":"2.16.6","to":"2.16.7"}""", "", "run.planned" },
        { "run.plan", """{"run":RUN,"runbook":"fractal-release","from":"2.16.6","to":"2.16.7"}""", "approval", "run.planned run.waiting-for-approval" },
        { "run.start", """{"run":RUN,"reason":null,"state":"Running"}""", "", "run.started" },
        { "run.start", """{"run":RUN,"scheduled":true,"state":"Running"}""", "", "run.started" },
        { "run.state", """{"run":RUN,"state":"Failed","message":"Install: exit 1"}""", "", "run.phase-failed" },
        { "run.state", """{"run":RUN,"state":"RollbackFailed","message":"Restore: exit 1"}""", "", "run.phase-failed" },
        { "run.state", """{"run":RUN,"state":"NeedsAttention","message":"unknown outcome"}""", "", "run.needs-attention" },
        { "run.state", """{"run":RUN,"state":"WaitingForChecklist","message":"tick it"}""", "", "run.waiting-for-checklist" },
        { "run.state", """{"run":RUN,"state":"Succeeded","message":"Succeeded."}""", "", "run.succeeded" },
        { "run.state", """{"run":RUN,"state":"RolledBack","message":"Rolled back."}""", "", "run.rolled-back" },
        { "run.rollback", """{"run":RUN,"reason":"no","state":"RolledBack"}""", "", "run.rolled-back" },
        { "run.rollback", """{"run":RUN,"reason":"no","state":"RollingBack"}""", "", "" },
        { "run.checklist", """{"run":RUN,"item":"Log in","done":true,"runState":"Succeeded"}""", "", "run.succeeded" },
        { "run.checklist", """{"run":RUN,"item":"Log in","done":true,"runState":"WaitingForChecklist"}""", "", "" },
        { "run.phase", """{"run":RUN,"phase":"pip-install","state":"Failed","message":"exit 1"}""", "", "" },
        { "run.retry", """{"run":RUN,"reason":"again","state":"Running"}""", "", "" },
        { "target.hostkey-mismatch", """{"pinnedFingerprint":"SHA256:abc","transport":"SshNet"}""", "", "target.host-key-changed" },
        { "preflight.run", """{"id":PREFLIGHT,"failed":1,"failedChecks":["env.complete"]}""", "", "preflight.newly-failing" },
        { "preflight.run", """{"id":PREFLIGHT,"failed":1,"failedChecks":["env.complete"]}""", "failing:env.complete", "" },
        { "preflight.run", """{"id":PREFLIGHT,"failed":2,"failedChecks":["env.complete","users.migratable"]}""", "failing:env.complete", "preflight.newly-failing" },
        { "preflight.run", """{"id":PREFLIGHT,"failed":0,"failedChecks":[]}""", "failing:env.complete", "" },
        { "target.edit", """{"before":{},"after":{}}""", "", "" },
    };

    [Theory]
    [MemberData(nameof(Mapping))]
    public async Task KindsOf_MapsEachAuditEventAsRecorded(string action, string details, string setup, string expected)
    {
        var ct = TestContext.Current.CancellationToken;
        var (runId, targetId) = await RunSeed.AddPlannedRunAsync(rig.App.Services);
        await using var scope = rig.App.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        if (setup == "approval")
        {
            await db.Runs.Where(r => r.Id == runId).ExecuteUpdateAsync(s => s.SetProperty(r => r.RequiresApproval, true), ct);
        }

        long preflightId = 0;
        if (action == "preflight.run")
        {
            // The earlier preflight (failing the named check, when the setup says so), then the one of this event.
            var before = setup.StartsWith("failing:", StringComparison.Ordinal)
                ? new[] { new UpgradeConsole.Core.Fractal.CheckResult(setup["failing:".Length..], "Earlier", UpgradeConsole.Core.Fractal.CheckStatus.Fail, "no", null, null) }
                : [];
            db.Add(new PreflightRun { TargetId = targetId, At = TimeProvider.System.GetUtcNow(), Actor = "test", ChecksJson = JsonSerializer.Serialize(before, JsonSerializerOptions.Web), Failed = before.Length });
            var current = new PreflightRun { TargetId = targetId, At = TimeProvider.System.GetUtcNow(), Actor = "test", ChecksJson = "[]" };
            db.Add(current);
            await db.SaveChangesAsync(ct);
            preflightId = current.Id;
        }

        var e = new AuditEvent
        {
            Actor = "system",
            Action = action,
            TargetId = targetId,
            Details = details.Replace("RUN", runId.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
                .Replace("PREFLIGHT", preflightId.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal),
        };
        var kinds = await scope.ServiceProvider.GetRequiredService<NotificationComposer>().KindsOfAsync(e, ct);
        Assert.Equal(expected.Split(' ', StringSplitOptions.RemoveEmptyEntries), kinds.Select(NotificationKinds.Name));
        // The listener enqueues a job only for the actions that can mean a notification.
        Assert.True(kinds.Count == 0 || NotificationComposer.Actions.Contains(action));
    }

    /// <summary>A target (and run, for the run kinds) in the state the kind's event needs.</summary>
    private async Task<(int TargetId, int? RunId)> TargetForAsync(NotificationEvents kind)
    {
        switch (kind)
        {
            case NotificationEvents.HostKeyChanged:
                var id = await rig.App.AddTargetAsync(new()
                {
                    ["Name"] = "rekeyed-" + Guid.NewGuid().ToString("N")[..6],
                    ["Host"] = ssh.Host,
                    ["Port"] = ssh.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["SshUser"] = ssh.User,
                    ["PrivateKey"] = ssh.ClientKey,
                    ["WorkingDirectory"] = "~/fractal",
                });
                await rig.App.PinHostKeyAsync(id, await ssh.HostKeyFingerprintAsync());
                return (id, null);
            case NotificationEvents.PreflightNewlyFailing:
                return ((await RunSeed.AddPlannedRunAsync(rig.App.Services)).TargetId, null);
            case NotificationEvents.RolledBack:
                var (failed, _) = await RunSeed.AddRunningRunAsync(rig.App.Services, null, ("pip-install", "Install", PhaseState.Pending));
                await UpdateRunAsync(failed, run => run.State = RunState.Failed);
                return (await TargetOfAsync(failed), failed);
            default:
                var (planned, targetId) = await RunSeed.AddPlannedRunAsync(rig.App.Services);
                return (targetId, planned);
        }
    }

    /// <summary>Makes the kind's event happen; returns every kind that happened to the target on the way.</summary>
    private async Task<List<NotificationEvents>> CauseAsync(NotificationEvents kind, int targetId, int? runId)
    {
        var ct = TestContext.Current.CancellationToken;
        switch (kind)
        {
            case NotificationEvents.RunPlanned or NotificationEvents.WaitingForApproval:
                // As RunService.PlanAsync records a plan (planning for real needs a reachable, green target).
                if (kind == NotificationEvents.WaitingForApproval)
                {
                    await UpdateRunAsync(runId!.Value, run => run.RequiresApproval = true);
                }

                await RecordAsync(UpgradeConsoleApplicationFactory.AdminEmail, "run.plan", targetId, runId!.Value, new { run = runId, runbook = FractalRunbooks.ReleaseId, from = "2.16.6", to = "2.16.7" });
                return kind == NotificationEvents.WaitingForApproval ? [NotificationEvents.RunPlanned, NotificationEvents.WaitingForApproval] : [NotificationEvents.RunPlanned];

            case NotificationEvents.RunStarted or NotificationEvents.PhaseFailed:
                // Real: an Operator starts it; the driver's first phase cannot reach the target (no key pinned): Failed.
                using (var started = await rig.Operator.PostAsJsonAsync($"/api/v1/runs/{runId}/start", new { }, ct))
                {
                    Assert.True(started.IsSuccessStatusCode, await started.Content.ReadAsStringAsync(ct));
                }

                await Eventually.TrueAsync(async () => await StateOfAsync(runId!.Value) == RunState.Failed, TimeSpan.FromSeconds(60));
                return [NotificationEvents.RunStarted, NotificationEvents.PhaseFailed];

            case NotificationEvents.NeedsAttention or NotificationEvents.WaitingForChecklist or NotificationEvents.RunSucceeded:
                // As RunDriver.FinishRunAsync records a run's new state.
                var state = kind switch
                {
                    NotificationEvents.NeedsAttention => RunState.NeedsAttention,
                    NotificationEvents.WaitingForChecklist => RunState.WaitingForChecklist,
                    _ => RunState.Succeeded,
                };
                await UpdateRunAsync(runId!.Value, run => run.State = state);
                await RecordAsync("system", "run.state", targetId, runId!.Value, new { run = runId, state = state.ToString(), message = "as the driver says it" });
                return [kind];

            case NotificationEvents.RolledBack:
                // Real: rolled back through the API (nothing had started: RolledBack at once).
                using (var rollback = await rig.Operator.PostAsJsonAsync($"/api/v1/runs/{runId}/rollback", new { reason = "not today" }, ct))
                {
                    Assert.True(rollback.IsSuccessStatusCode, await rollback.Content.ReadAsStringAsync(ct));
                }

                return [NotificationEvents.RolledBack];

            case NotificationEvents.HostKeyChanged:
                // Real: the host presents another key than the pinned one (the pin is moved to another key, as if the
                // host's key had been replaced); the preflight's connection sees it, blocks the target and fails.
                var (_, otherPublic) = await SshServer.NewKeyAsync("ed25519");
                var blob = otherPublic.Split(' ')[1];
                await using (var scope = rig.App.Services.CreateAsyncScope())
                {
                    var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
                    await db.Targets.Where(t => t.Id == targetId).ExecuteUpdateAsync(s => s
                        .SetProperty(t => t.PinnedKey, blob)
                        .SetProperty(t => t.PinnedFingerprint, "SHA256:" + Convert.ToBase64String(SHA256.HashData(Convert.FromBase64String(blob))).TrimEnd('='))
                        .SetProperty(t => t.Version, Guid.NewGuid()), ct);
                }

                await PreflightAsync(targetId);
                return [NotificationEvents.HostKeyChanged, NotificationEvents.PreflightNewlyFailing];

            case NotificationEvents.PreflightNewlyFailing:
                // Real: the preflight of a target that cannot be reached fails; the same failure again is not news.
                await PreflightAsync(targetId);
                await rig.SettledAsync(targetId, 2);
                await PreflightAsync(targetId);
                return [NotificationEvents.PreflightNewlyFailing];

            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    private async Task PreflightAsync(int targetId)
    {
        using var response = await rig.Operator.PostAsync($"/api/v1/targets/{targetId}/preflight", null, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.IsSuccessStatusCode, body);
        Assert.False(JsonDocument.Parse(body).RootElement.GetProperty("passed").GetBoolean(), body);
    }

    private async Task RecordAsync(string actor, string action, int targetId, int runId, object details)
    {
        await using var scope = rig.App.Services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<AuditLog>().RecordAsync(actor, action, targetId, $"run {runId}", details, TestContext.Current.CancellationToken);
    }

    private async Task UpdateRunAsync(int runId, Action<Run> change)
    {
        await using var scope = rig.App.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var run = await db.Runs.Include(r => r.Phases).FirstAsync(r => r.Id == runId, TestContext.Current.CancellationToken);
        change(run);
        run.Version = Guid.NewGuid();
        await db.SaveChangesAsync(TestContext.Current.CancellationToken);
    }

    private async Task<RunState> StateOfAsync(int runId)
    {
        await using var scope = rig.App.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<AppDbContext>().Runs.Where(r => r.Id == runId).Select(r => r.State).FirstAsync();
    }

    private async Task<int> TargetOfAsync(int runId)
    {
        await using var scope = rig.App.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<AppDbContext>().Runs.Where(r => r.Id == runId).Select(r => r.TargetId).FirstAsync();
    }

    private async Task<string> TargetNameAsync(int targetId)
    {
        await using var scope = rig.App.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<AppDbContext>().Targets.Where(t => t.Id == targetId).Select(t => t.Name).FirstAsync();
    }

    private static string PlainText(byte[] body) => Encoding.UTF8.GetString(body);
}
