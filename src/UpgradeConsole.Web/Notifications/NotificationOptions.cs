namespace UpgradeConsole.Web.Notifications;

public enum SmtpSecurity
{
    /// <summary>Plain connection, upgraded with STARTTLS (refused if the server does not offer it).</summary>
    StartTls,

    /// <summary>TLS from the first byte (port 465).</summary>
    SslOnConnect,

    /// <summary>No TLS at all: only for a relay on the same host.</summary>
    None,
}

/// <summary>The SMTP server e-mail notifications go through (<c>UpgradeConsole:Smtp:*</c>). The password is never shown back.</summary>
public sealed class SmtpOptions
{
    public const string Section = "UpgradeConsole:Smtp";

    /// <summary>Empty: no e-mail is sent (deliveries to e-mail recipients fail with a clear line).</summary>
    public string? Host { get; set; }

    public int Port { get; set; } = 587;

    public SmtpSecurity Security { get; set; } = SmtpSecurity.StartTls;

    public string? UserName { get; set; }

    public string? Password { get; set; }

    public string From { get; set; } = "UpgradeConsole <upgradeconsole@localhost>";

    /// <summary>
    /// The SHA-256 fingerprint (hex) of a server certificate to accept although no trusted authority signed it
    /// (a facility relay with its own certificate); otherwise the system's trust store decides.
    /// </summary>
    public string? CertificateSha256 { get; set; }

    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>How notifications are delivered (<c>UpgradeConsole:Notifications:*</c>).</summary>
public sealed class NotificationOptions
{
    public const string Section = "UpgradeConsole:Notifications";

    /// <summary>The dashboard's address as people reach it, for the links in notifications (e.g. https://upgrades.example.org).</summary>
    public string? PublicUrl { get; set; }

    /// <summary>Attempts per delivery (the first included) before it is logged as failed.</summary>
    public int Attempts { get; set; } = 5;

    /// <summary>The wait before the first retry; each further retry waits twice as long as the one before.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a webhook receiver may take to answer.</summary>
    public TimeSpan WebhookTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The wait before retry <paramref name="attempt"/> + 1 (exponential backoff).</summary>
    public TimeSpan Backoff(int attempt) => RetryDelay * Math.Pow(2, Math.Max(0, attempt - 1));
}
