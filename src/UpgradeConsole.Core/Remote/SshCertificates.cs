using System.Text.RegularExpressions;
using Renci.SshNet.Security;

namespace UpgradeConsole.Core.Remote;

/// <summary>OpenSSH certificates as SSH.NET reads them: user certificates to sign in with, host certificates to trust through a CA.</summary>
public static partial class SshCertificates
{
    /// <summary>Reads a <c>-cert.pub</c> line (<c>ssh-ed25519-cert-v01@openssh.com AAAA… comment</c>); null when it is not one.</summary>
    public static Certificate? Read(string? text)
    {
        var parts = (text ?? "").Trim().Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2 || !parts[0].EndsWith("-cert-v01@openssh.com", StringComparison.Ordinal))
        {
            return null;
        }

        try
        {
            var certificate = new Certificate(Convert.FromBase64String(parts[1]));
            return certificate.Name == parts[0] ? certificate : null;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException or NotSupportedException or IndexOutOfRangeException or Renci.SshNet.Common.SshException)
        {
            return null;
        }
    }

    /// <summary>Why the text is not a usable user certificate, or null.</summary>
    public static string? CheckUserCertificate(string text) =>
        Read(text) switch
        {
            null => "Paste the user certificate as ssh-keygen -s wrote it: one line starting with ssh-ed25519-cert-v01@openssh.com (or the ECDSA/RSA kind).",
            { Type: Certificate.CertificateType.User } => null,
            _ => "This is a host certificate; a target signs in with a user certificate.",
        };

    /// <summary>
    /// Whether a host certificate presented by <paramref name="host"/> is signed by the pinned CA and valid now: a
    /// host certificate, within its validity period, naming the host among its principals (or naming none). Null
    /// when it holds; else the sentence that says why not. The signature itself SSH.NET checks during the key exchange.
    /// </summary>
    public static string? CheckHostCertificate(Certificate certificate, string pinnedCaFingerprint, string host, DateTimeOffset now)
    {
        var ca = "SHA256:" + certificate.CertificateAuthorityKeyFingerPrint;
        if (!string.Equals(ca, pinnedCaFingerprint, StringComparison.Ordinal))
        {
            return $"The host's certificate is signed by the CA key {ca}, not by the pinned CA {pinnedCaFingerprint}.";
        }

        if (certificate.Type != Certificate.CertificateType.Host)
        {
            return "The host presented a user certificate as its host key.";
        }

        if (now < certificate.ValidAfter || now >= certificate.ValidBefore)
        {
            return $"The host's certificate is valid from {certificate.ValidAfter:yyyy-MM-dd HH:mm} to {certificate.ValidBefore:yyyy-MM-dd HH:mm} UTC, not now.";
        }

        if (certificate.ValidPrincipals.Any() && !certificate.ValidPrincipals.Contains(host, StringComparer.OrdinalIgnoreCase))
        {
            return $"The host's certificate is for {string.Join(", ", certificate.ValidPrincipals)}, not for {host}.";
        }

        return null;
    }

    /// <summary>An OpenSSH SHA256 fingerprint: <c>SHA256:</c> and 43 base64 characters.</summary>
    public static bool IsSha256Fingerprint(string text) => FingerprintPattern().IsMatch(text);

    [GeneratedRegex("^SHA256:[A-Za-z0-9+/]{43}$")]
    private static partial Regex FingerprintPattern();
}
