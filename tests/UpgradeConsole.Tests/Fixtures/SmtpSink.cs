using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A real SMTP server (Debian's python3-aiosmtpd, see smtp_sink.py) on 127.0.0.1: STARTTLS with a throwaway
/// self-signed certificate (its SHA-256 is what the dashboard pins), AUTH with one user; received mails land
/// in a directory the test reads. Stopped and removed on dispose, also after a failure.
/// </summary>
public sealed class SmtpSink : IAsyncDisposable
{
    public const string User = "notifier";

    private readonly Process _process;

    private SmtpSink(Process process, int port, string directory, string password, string certificateSha256)
    {
        _process = process;
        Port = port;
        Directory = directory;
        Password = password;
        CertificateSha256 = certificateSha256;
    }

    public int Port { get; }

    public string Directory { get; }

    public string Password { get; }

    public string CertificateSha256 { get; }

    public static async Task<SmtpSink> StartAsync()
    {
        var root = System.IO.Directory.CreateTempSubdirectory("uc-smtp-").FullName;
        var mails = System.IO.Directory.CreateDirectory(Path.Combine(root, "mail")).FullName;
        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(TimeProvider.System.GetUtcNow().AddDays(-1), TimeProvider.System.GetUtcNow().AddDays(1));
        var cert = Path.Combine(root, "cert.pem");
        var key = Path.Combine(root, "key.pem");
        await File.WriteAllTextAsync(cert, certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(key, rsa.ExportPkcs8PrivateKeyPem());
        var password = "smtp-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12));
        var port = FreePort();
        var start = new ProcessStartInfo("/usr/bin/python3") // Debian's, where python3-aiosmtpd lives (not a pyenv shim)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "Fixtures", "smtp_sink.py"), "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--dir", mails, "--cert", cert, "--key", key, "--user", User, "--password", password })
        {
            start.ArgumentList.Add(a);
        }

        var process = Process.Start(start)!;
        var sink = new SmtpSink(process, port, mails, password, Convert.ToHexString(SHA256.HashData(certificate.RawData)));
        using var ready = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var line = await process.StandardOutput.ReadLineAsync(ready.Token);
        if (line != "ready")
        {
            var error = await process.StandardError.ReadToEndAsync(CancellationToken.None);
            await sink.DisposeAsync();
            throw new InvalidOperationException("The SMTP sink (aiosmtpd) did not start: " + error);
        }

        return sink;
    }

    /// <summary>The mails received so far: their headers, a blank line, then the text body decoded (MimeKit reads them).</summary>
    public IReadOnlyList<string> Mails() =>
        System.IO.Directory.GetFiles(Directory, "*.eml").Order(StringComparer.Ordinal).Select(path =>
        {
            using var message = MimeKit.MimeMessage.Load(path);
            return string.Join("\n", message.Headers.Select(h => $"{h.Field}: {h.Value}")) + "\n\n" + message.TextBody;
        }).ToList();

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.StandardInput.Close();
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(stop.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
        }
        finally
        {
            _process.Dispose();
            System.IO.Directory.Delete(Path.GetDirectoryName(Directory)!, recursive: true);
        }
    }
}
