using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Notifications;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Notifications;

/// <summary>
/// A run's state change reaches a target's webhooks (a real HTTP receiver checks the HMAC signature; a failing one
/// is retried with backoff, then logged with its last answer) and people by e-mail through a real SMTP server
/// (aiosmtpd on 127.0.0.1 with STARTTLS and AUTH); no secret the dashboard holds leaves in any of them.
/// </summary>
public sealed class NotifyingOfARunTests : IAsyncLifetime
{
    private const string PublicUrl = "https://upgrades.example.org";
    private static readonly string[] RolledBackOnly = ["run.rolled-back"];
    private static readonly string[] RolledBackOrSucceeded = ["run.rolled-back", "run.succeeded"];
    private const string FailingSecret = "the-failing-hooks-own-secret-1234";
    private UpgradeConsoleApplicationFactory _app = default!;
    private SmtpSink _smtp = default!;
    private readonly WebhookReceiver _receiver = new();

    public async ValueTask InitializeAsync()
    {
        _smtp = await SmtpSink.StartAsync();
        _app = new UpgradeConsoleApplicationFactory()
            .WithSetting("UpgradeConsole:Smtp:Host", "127.0.0.1")
            .WithSetting("UpgradeConsole:Smtp:Port", _smtp.Port.ToString(System.Globalization.CultureInfo.InvariantCulture))
            .WithSetting("UpgradeConsole:Smtp:Security", "StartTls")
            .WithSetting("UpgradeConsole:Smtp:UserName", SmtpSink.User)
            .WithSetting("UpgradeConsole:Smtp:Password", _smtp.Password)
            .WithSetting("UpgradeConsole:Smtp:CertificateSha256", _smtp.CertificateSha256)
            .WithSetting("UpgradeConsole:Smtp:From", "UpgradeConsole <upgrades@example.org>")
            .WithSetting("UpgradeConsole:Notifications:PublicUrl", PublicUrl)
            .WithSetting("UpgradeConsole:Notifications:Attempts", "3")
            .WithSetting("UpgradeConsole:Notifications:RetryDelay", "00:00:00.200");
        _app.ServeOverKestrel();
    }

    [Fact]
    public async Task ARollback_ReachesTheWebhooksAndThePeopleWhoAskedForIt_SignedAndMasked_AndAFailingReceiverIsRetriedThenLogged()
    {
        var ct = TestContext.Current.CancellationToken;
        var adminEmail = await _app.SignedInEmailAsync("Admin");
        using var admin = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, adminEmail, "notifications script", "Admin"));
        var (runId, _) = await RunSeed.AddRunningRunAsync(_app.Services, null, ("pip-install", "Install", PhaseState.Pending));
        int targetId;
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            targetId = (await scope.ServiceProvider.GetRequiredService<AppDbContext>().Runs.FirstAsync(r => r.Id == runId, ct)).TargetId;
        }

        // An Admin script adds two webhooks: one answering, one down.
        using var created = await admin.PostAsJsonAsync($"/api/v1/targets/{targetId}/webhooks", new { name = "chat", url = _receiver.Url("/hook"), events = RolledBackOnly, slackText = true }, ct);
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync(ct));
        var createdJson = await created.Content.ReadFromJsonAsync<JsonElement>(ct);
        var secret = createdJson.GetProperty("secret").GetString()!;
        var hookId = createdJson.GetProperty("webhook").GetProperty("id").GetInt32();
        using var failing = await admin.PostAsJsonAsync($"/api/v1/targets/{targetId}/webhooks", new { name = "down", url = _receiver.Url("/fail"), events = RolledBackOrSucceeded, secret = FailingSecret }, ct);
        Assert.True(failing.StatusCode == HttpStatusCode.Created, await failing.Content.ReadAsStringAsync(ct));
        var failingJson = await failing.Content.ReadFromJsonAsync<JsonElement>(ct);
        Assert.Equal(JsonValueKind.Null, failingJson.GetProperty("secret").ValueKind);
        var failingId = failingJson.GetProperty("webhook").GetProperty("id").GetInt32();

        // Secrets are never read back.
        var listed = await admin.GetStringAsync($"/api/v1/targets/{targetId}/webhooks", ct);
        Assert.DoesNotContain(secret, listed, StringComparison.Ordinal);
        Assert.DoesNotContain(FailingSecret, listed, StringComparison.Ordinal);
        Assert.DoesNotContain("\"secret\"", listed, StringComparison.Ordinal);

        // The Admin lists an ops address; the Admin asks for rollbacks of every target; an Operator asks for nothing.
        var ops = await _app.AsAsync<NotificationSettings, ChannelResult>(adminEmail, (s, actor) =>
            s.CreateAsync(targetId, ChannelKind.Email, new ChannelInput("ops", "ops@example.org", ["run.rolled-back"]), actor, CancellationToken.None));
        Assert.Null(ops.Error);
        Assert.Null(await _app.AsAsync<NotificationSettings, string?>(adminEmail, (s, actor) => s.SetPreferenceAsync(null, NotificationEvents.RolledBack, actor, CancellationToken.None)));
        var operatorEmail = await _app.SignedInEmailAsync("Operator");
        Assert.Null(await _app.AsAsync<NotificationSettings, string?>(operatorEmail, (s, actor) => s.SetPreferenceAsync(null, NotificationEvents.RunSucceeded, actor, CancellationToken.None)));

        // The run failed with secrets in its message (as a step could print them).
        var leaky = $"pip failed: smtp {_smtp.Password}, hooks {secret} and {FailingSecret}";
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            await db.Runs.Where(r => r.Id == runId).ExecuteUpdateAsync(s => s.SetProperty(r => r.State, RunState.Failed).SetProperty(r => r.Message, leaky), ct);
        }

        // Rolled back (nothing had started, so nothing to undo: RolledBack at once), through the API.
        using var rollback = await admin.PostAsJsonAsync($"/api/v1/runs/{runId}/rollback", new { reason = "not today" }, ct);
        Assert.True(rollback.IsSuccessStatusCode, await rollback.Content.ReadAsStringAsync(ct));

        await Eventually.TrueAsync(() => Task.FromResult(_receiver.At("/hook").Count >= 1 && _receiver.At("/fail").Count >= 3 && _smtp.Mails().Count >= 2),
            TimeSpan.FromSeconds(90), () => $"hook {_receiver.At("/hook").Count}, fail {_receiver.At("/fail").Count}, mails {_smtp.Mails().Count}\n{_app.Logs}");

        // The answering webhook: once, signed with its secret, the run's summary and link, Slack's text.
        var hook = Assert.Single(_receiver.At("/hook"));
        Assert.Equal("sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), hook.Body)), hook.Headers["X-UpgradeConsole-Signature"]);
        Assert.Equal("run.rolled-back", hook.Headers["X-UpgradeConsole-Event"]);
        var bodyText = Encoding.UTF8.GetString(hook.Body);
        var body = JsonDocument.Parse(bodyText).RootElement;
        Assert.Equal("run.rolled-back", body.GetProperty("event").GetString());
        Assert.Equal(runId, body.GetProperty("run").GetProperty("id").GetInt32());
        Assert.Equal("RolledBack", body.GetProperty("run").GetProperty("state").GetString());
        Assert.Equal($"{PublicUrl}/runs/{runId}", body.GetProperty("link").GetString());
        Assert.Contains($"{PublicUrl}/runs/{runId}", body.GetProperty("text").GetString(), StringComparison.Ordinal);

        // The failing one: signed with its own secret, tried three times, then logged with its last answer.
        foreach (var attempt in _receiver.At("/fail"))
        {
            Assert.Equal("sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(FailingSecret), attempt.Body)), attempt.Headers["X-UpgradeConsole-Signature"]);
            Assert.False(JsonDocument.Parse(attempt.Body).RootElement.TryGetProperty("text", out _), "no Slack text unless asked for");
        }

        JsonElement delivery = default;
        await Eventually.TrueAsync(async () =>
        {
            var log = await admin.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{targetId}/webhooks/{failingId}/deliveries", ct);
            delivery = log.EnumerateArray().FirstOrDefault();
            return delivery.ValueKind == JsonValueKind.Object && delivery.GetProperty("state").GetString() == "Failed";
        }, TimeSpan.FromSeconds(30));
        Assert.Equal(3, delivery.GetProperty("attempts").GetInt32());
        Assert.Equal(500, delivery.GetProperty("lastStatus").GetInt32());
        Assert.Contains("maintenance", delivery.GetProperty("lastResponse").GetString(), StringComparison.Ordinal);
        var okHook = await admin.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{targetId}/webhooks/{hookId}", ct);
        Assert.Equal("Delivered", okHook.GetProperty("lastDelivery").GetProperty("state").GetString());
        Assert.Equal(200, okHook.GetProperty("lastDelivery").GetProperty("lastStatus").GetInt32());

        // E-mail: the ops address and the Admin (who asked), not the Operator (who asked for something else); authenticated over STARTTLS.
        var mails = _smtp.Mails();
        Assert.Equal(2, mails.Count);
        Assert.Contains(mails, m => m.Contains("X-Envelope-To: ops@example.org", StringComparison.Ordinal));
        Assert.Contains(mails, m => m.Contains($"X-Envelope-To: {adminEmail}", StringComparison.Ordinal));
        Assert.DoesNotContain(mails, m => m.Contains(operatorEmail, StringComparison.Ordinal));
        Assert.All(mails, m => Assert.Contains($"X-Authenticated-As: {SmtpSink.User}", m, StringComparison.Ordinal));
        Assert.All(mails, m => Assert.Contains($"{PublicUrl}/runs/{runId}", m, StringComparison.Ordinal));

        // Nothing secret left in any of them: the log's mask stands in.
        var everything = mails.Concat(_receiver.Received.Select(r => Encoding.UTF8.GetString(r.Body))).ToList();
        foreach (var s in new[] { _smtp.Password, secret, FailingSecret })
        {
            Assert.DoesNotContain(everything, text => text.Contains(s, StringComparison.Ordinal));
        }

        Assert.Contains(RunLogWriter.Mask, body.GetProperty("run").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.All(mails, m => Assert.Contains(RunLogWriter.Mask, m, StringComparison.Ordinal));
    }

    [Fact]
    public void MaskText_SecretsAndSecretLines_AreMaskedAsInTheLog()
    {
        var masked = NotificationComposer.MaskText("DB_PASSWORD=abc123\nthe token s3cr3t-value was used\nplain line", ["s3cr3t-value"]);
        Assert.Equal($"DB_PASSWORD={RunLogWriter.Mask}\nthe token {RunLogWriter.Mask} was used\nplain line", masked);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        _receiver.Dispose();
        await _smtp.DisposeAsync();
    }
}
