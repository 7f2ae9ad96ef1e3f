using System.Net.Security;
using System.Security.Cryptography;
using System.Text;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Options;
using MimeKit;

namespace UpgradeConsole.Web.Notifications;

/// <summary>A delivery attempt that did not reach its recipient, with what to log.</summary>
public sealed class DeliveryFailedException(string message, int? status = null, Exception? inner = null) : Exception(message, inner)
{
    public int? Status { get; } = status;
}

/// <summary>Sends e-mail through the configured SMTP server (MailKit): STARTTLS by default, authenticated when a user name is set.</summary>
public sealed class EmailSender(IOptionsMonitor<SmtpOptions> options)
{
    /// <summary>Sends one plain-text mail; returns the server's answer.</summary>
    public async Task<string> SendAsync(string to, string subject, string body, CancellationToken ct)
    {
        var o = options.CurrentValue;
        if (string.IsNullOrWhiteSpace(o.Host))
        {
            throw new DeliveryFailedException($"No SMTP server is configured ({SmtpOptions.Section}:Host).");
        }

        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(o.From));
        message.To.Add(MailboxAddress.Parse(to));
        message.Subject = subject;
        message.Body = new TextPart("plain") { Text = body };

        using var client = new SmtpClient { Timeout = (int)o.Timeout.TotalMilliseconds };
        if (!string.IsNullOrWhiteSpace(o.CertificateSha256))
        {
            var pinned = o.CertificateSha256.Replace(":", "", StringComparison.Ordinal).Trim();
            client.ServerCertificateValidationCallback = (_, certificate, _, errors) =>
                errors == SslPolicyErrors.None
                || (certificate is not null && Convert.ToHexString(SHA256.HashData(certificate.GetRawCertData())).Equals(pinned, StringComparison.OrdinalIgnoreCase));
        }

        try
        {
            var security = o.Security switch
            {
                SmtpSecurity.SslOnConnect => SecureSocketOptions.SslOnConnect,
                SmtpSecurity.None => SecureSocketOptions.None,
                _ => SecureSocketOptions.StartTls,
            };
            await client.ConnectAsync(o.Host, o.Port, security, ct);
            if (!string.IsNullOrEmpty(o.UserName))
            {
                await client.AuthenticateAsync(o.UserName, o.Password ?? "", ct);
            }

            var answer = await client.SendAsync(message, ct);
            await client.DisconnectAsync(true, ct);
            return answer;
        }
        catch (Exception ex) when (ex is MailKit.Net.Smtp.SmtpCommandException or MailKit.Net.Smtp.SmtpProtocolException or AuthenticationException
            or SslHandshakeException or System.Net.Sockets.SocketException or IOException or TimeoutException or MailKit.ServiceNotConnectedException)
        {
            throw new DeliveryFailedException($"SMTP {o.Host}:{o.Port}: {ex.Message}", inner: ex);
        }
    }
}

/// <summary>Posts a webhook's JSON body, signed with its secret (<see cref="SignatureHeader"/>).</summary>
public sealed class WebhookSender(IHttpClientFactory clients, IOptionsMonitor<NotificationOptions> options)
{
    public const string ClientName = "UpgradeConsole.Webhooks";
    public const string SignatureHeader = "X-UpgradeConsole-Signature";
    public const string EventHeader = "X-UpgradeConsole-Event";
    public const string DeliveryHeader = "X-UpgradeConsole-Delivery";

    /// <summary><c>sha256=</c> and the hex HMAC-SHA256 of the body's bytes with the webhook's secret.</summary>
    public static string Sign(string secret, byte[] body) =>
        "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));

    /// <summary>Posts the body; returns the status and the start of the answer; a non-2xx answer or no answer throws.</summary>
    public async Task<(int Status, string Response)> SendAsync(string url, string body, string secret, string eventName, long deliveryId, CancellationToken ct)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(bytes) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        request.Headers.Add(SignatureHeader, Sign(secret, bytes));
        request.Headers.Add(EventHeader, eventName);
        request.Headers.Add(DeliveryHeader, deliveryId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.CurrentValue.WebhookTimeout);
        HttpResponseMessage response;
        try
        {
            response = await clients.CreateClient(ClientName).SendAsync(request, timeout.Token);
        }
        catch (Exception ex) when (ex is HttpRequestException || (ex is OperationCanceledException && !ct.IsCancellationRequested))
        {
            throw new DeliveryFailedException(ex is OperationCanceledException ? $"No answer within {options.CurrentValue.WebhookTimeout.TotalSeconds:0} s." : ex.Message, inner: ex);
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(ct);
            text = text.Length > 500 ? text[..500] + "…" : text;
            var status = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode)
            {
                throw new DeliveryFailedException($"HTTP {status}: {text}", status);
            }

            return (status, text);
        }
    }
}
