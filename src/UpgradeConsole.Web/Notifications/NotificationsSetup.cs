using UpgradeConsole.Web.Audit;

namespace UpgradeConsole.Web.Notifications;

/// <summary>E-mail and webhook notifications of runs, host keys and preflights, per target and per event kind.</summary>
public static class NotificationsSetup
{
    public static WebApplicationBuilder AddNotifications(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<SmtpOptions>().BindConfiguration(SmtpOptions.Section)
            .Validate(o => o.Port is > 0 and < 65536, $"{SmtpOptions.Section}:Port must be a TCP port (1–65535).")
            .Validate(o => string.IsNullOrEmpty(o.From) || MimeKit.MailboxAddress.TryParse(o.From, out _), $"{SmtpOptions.Section}:From must be an e-mail address, like 'UpgradeConsole <upgrades@example.org>'.")
            .ValidateOnStart();
        services.AddOptions<NotificationOptions>().BindConfiguration(NotificationOptions.Section)
            .Validate(o => o.Attempts is >= 1 and <= 20, $"{NotificationOptions.Section}:Attempts must be between 1 and 20.")
            .Validate(o => o.RetryDelay > TimeSpan.Zero && o.WebhookTimeout > TimeSpan.Zero, $"{NotificationOptions.Section}:RetryDelay and WebhookTimeout must be positive.")
            .Validate(o => string.IsNullOrEmpty(o.PublicUrl) || Uri.TryCreate(o.PublicUrl, UriKind.Absolute, out _), $"{NotificationOptions.Section}:PublicUrl must be an absolute address, like https://upgrades.example.org.")
            .ValidateOnStart();
        // Redirects are not followed: a receiver answers where it was registered.
        services.AddHttpClient(WebhookSender.ClientName).ConfigurePrimaryHttpMessageHandler(() => new HttpClientHandler { AllowAutoRedirect = false });
        services.AddSingleton<IAuditListener, AuditNotifications>();
        services.AddScoped<NotificationComposer>();
        services.AddScoped<NotificationSettings>();
        services.AddScoped<NotificationJob>();
        services.AddSingleton<EmailSender>();
        services.AddSingleton<WebhookSender>();
        return builder;
    }
}
