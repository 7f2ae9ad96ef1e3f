using System.Globalization;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Notifications;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Notifications;

/// <summary>
/// One dashboard for a class of notification tests: a real SMTP server (aiosmtpd, STARTTLS and AUTH) and a real HTTP
/// receiver, the dashboard on Kestrel configured to use them, an Admin and an Operator API token, and two people who
/// choose events (an Operator and a Viewer). SQLite by default; PostgreSQL when a connection string is given.
/// </summary>
public sealed class NotificationRig : IAsyncLifetime
{
    public const string PublicUrl = "https://upgrades.example.org";
    public const string Chooser = "chooser@example.org";
    public const string Other = "other@example.org";

    private readonly DatabaseProvider _provider;
    private readonly string? _connectionString;

    public NotificationRig()
        : this(DatabaseProvider.Sqlite, null)
    {
    }

    internal NotificationRig(DatabaseProvider provider, string? connectionString)
    {
        _provider = provider;
        _connectionString = connectionString;
    }

    public UpgradeConsoleApplicationFactory App { get; private set; } = default!;

    public SmtpSink Smtp { get; private set; } = default!;

    public WebhookReceiver Receiver { get; } = new();

    public HttpClient Admin { get; private set; } = default!;

    public HttpClient Operator { get; private set; } = default!;

    public async ValueTask InitializeAsync()
    {
        Smtp = await SmtpSink.StartAsync();
        App = new UpgradeConsoleApplicationFactory(_provider, _connectionString)
            .WithSetting("UpgradeConsole:Smtp:Host", "127.0.0.1")
            .WithSetting("UpgradeConsole:Smtp:Port", Smtp.Port.ToString(CultureInfo.InvariantCulture))
            .WithSetting("UpgradeConsole:Smtp:Security", "StartTls")
            .WithSetting("UpgradeConsole:Smtp:UserName", SmtpSink.User)
            .WithSetting("UpgradeConsole:Smtp:Password", Smtp.Password)
            .WithSetting("UpgradeConsole:Smtp:CertificateSha256", Smtp.CertificateSha256)
            .WithSetting("UpgradeConsole:Smtp:From", "UpgradeConsole <upgrades@example.org>")
            .WithSetting("UpgradeConsole:Notifications:PublicUrl", PublicUrl)
            .WithSetting("UpgradeConsole:Notifications:RetryDelay", "00:00:00.200");
        App.ServeOverKestrel();
        var adminClient = await App.SignedInClientAsync("Admin");
        Admin = ApiTokens.Client(App.BaseUrl, await ApiTokens.CreateAsync(App, UpgradeConsoleApplicationFactory.AdminEmail, "notifications admin", "Admin"));
        Operator = ApiTokens.Client(App.BaseUrl, await ApiTokens.CreateAsync(App, await App.SignedInEmailAsync("Operator"), "notifications operator", "Operator"));
        await App.CreateUserAsync(adminClient, Chooser, "Operator");
        await App.CreateUserAsync(adminClient, Other, "Viewer");
    }

    /// <summary>The person's choice of events for one target, through the preferences page's service.</summary>
    public async Task PreferAsync(string email, int targetId, NotificationEvents events)
    {
        var error = await App.AsAsync<NotificationSettings, string?>(email, (s, actor) => s.SetPreferenceAsync(targetId, events, actor, CancellationToken.None));
        Assert.Null(error);
    }

    /// <summary>The target's delivery log, oldest first.</summary>
    public async Task<List<NotificationDelivery>> DeliveriesAsync(int targetId)
    {
        await using var scope = App.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<AppDbContext>().Set<NotificationDelivery>().AsNoTracking()
            .Where(d => d.TargetId == targetId).OrderBy(d => d.Id).ToListAsync();
    }

    /// <summary>
    /// Waits until no notification job is queued, running or scheduled in the dashboard's Hangfire storage and the target's
    /// deliveries are all delivered, <paramref name="expected"/> of them: after that nothing more arrives for what was done.
    /// </summary>
    public async Task<List<NotificationDelivery>> SettledAsync(int targetId, int expected)
    {
        List<NotificationDelivery> deliveries = [];
        await Eventually.TrueAsync(async () =>
        {
            if (NotificationJobsPending())
            {
                return false;
            }

            deliveries = await DeliveriesAsync(targetId);
            return deliveries.Count == expected && deliveries.All(d => d.State == DeliveryState.Delivered) && !NotificationJobsPending();
        }, TimeSpan.FromSeconds(90), () => $"{deliveries.Count} deliveries, {expected} expected: " +
            string.Join("; ", deliveries.Select(d => $"{NotificationKinds.Name(d.Event)} to {d.Recipient} {d.State} {d.LastResponse}")) + "\n" + App.Logs);
        return deliveries;
    }

    private bool NotificationJobsPending()
    {
        var monitoring = App.Services.GetRequiredService<JobStorage>().GetMonitoringApi();
        static bool Notification(Hangfire.Common.Job? job) => job?.Type == typeof(NotificationJob);
        return monitoring.ProcessingJobs(0, 1000).Any(j => Notification(j.Value.Job))
            || monitoring.ScheduledJobs(0, 1000).Any(j => Notification(j.Value.Job))
            || monitoring.Queues().Any(q => monitoring.EnqueuedJobs(q.Name, 0, 1000).Any(j => Notification(j.Value.Job)));
    }

    /// <summary>The mails to <paramref name="recipient"/> about <paramref name="targetName"/>: their text bodies.</summary>
    public IReadOnlyList<string> MailsTo(string recipient, string targetName) =>
        Smtp.Mails().Select(m => (Headers: m[..m.IndexOf("\n\n", StringComparison.Ordinal)].Split('\n'), Body: m[(m.IndexOf("\n\n", StringComparison.Ordinal) + 2)..]))
            .Where(m => m.Headers.Contains($"X-Envelope-To: {recipient}") && m.Body.Contains(targetName, StringComparison.Ordinal))
            .Select(m => m.Body)
            .ToList();

    public async ValueTask DisposeAsync()
    {
        Admin?.Dispose();
        Operator?.Dispose();
        if (App is not null)
        {
            await App.DisposeAsync();
        }

        Receiver.Dispose();
        if (Smtp is not null)
        {
            await Smtp.DisposeAsync();
        }
    }
}
