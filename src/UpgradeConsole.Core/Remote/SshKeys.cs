using System.Text;
using Renci.SshNet;

namespace UpgradeConsole.Core.Remote;

/// <summary>Private keys for SSH.NET, loaded from memory or a key file (never written anywhere by us).</summary>
public static class SshKeys
{
    /// <summary>Normalizes a pasted key: Unix newlines, one final newline, no surrounding blanks.</summary>
    public static string Normalize(string key) => key.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n').Trim() + "\n";

    /// <summary>Parses a private key held in memory (OpenSSH, PEM or PuTTY; ed25519, ECDSA, RSA), decrypting it with <paramref name="passphrase"/>.</summary>
    /// <exception cref="SshConnectionException">The key is unusable or the passphrase is missing or wrong (a plain sentence).</exception>
    /// <remarks><paramref name="certificate"/>: an OpenSSH user certificate for the key (its <c>-cert.pub</c> line), offered with it; null: none.</remarks>
    public static IPrivateKeySource FromText(string privateKey, string? passphrase, string what = "stored private key", string? certificate = null)
    {
        if (certificate is null)
        {
            return Load(privateKey, passphrase, what);
        }

        if (SshCertificates.CheckUserCertificate(certificate) is { } problem)
        {
            throw new SshConnectionException($"The user certificate of the {what} is unusable: {problem}", problem, SshFailure.BadKey);
        }

        var key = Load(privateKey, passphrase, what);
        var words = certificate.Trim().Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (words[0] == Ed25519Certificates.Algorithm)
        {
            // SSH.NET 2026.0.0 misreads one Ed25519 certificate in 512 (see Ed25519Certificates): read the key ourselves.
            return Ed25519Certificates.WithUserCertificate(key, Convert.FromBase64String(words[1]), out var mismatch)
                ?? throw new SshConnectionException($"The user certificate of the {what} is unusable: {mismatch}", mismatch, SshFailure.BadKey);
        }

        try
        {
            using var stream = new MemoryStream(Encoding.UTF8.GetBytes(privateKey));
            using var certificateStream = new MemoryStream(Encoding.UTF8.GetBytes(certificate.Trim() + "\n"));
            return new PrivateKeyFile(stream, string.IsNullOrEmpty(passphrase) ? null : passphrase, certificateStream);
        }
        catch (ArgumentException ex)
        {
            throw new SshConnectionException($"The user certificate of the {what} is unusable: it certifies another key.", ex.Message, SshFailure.BadKey);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw SshNetErrors.BadKey(ex, what);
        }
    }

    /// <summary>Parses a private key held in memory (no certificate).</summary>
    private static PrivateKeyFile Load(string privateKey, string? passphrase, string what)
    {
        try
        {
            using var stream = new MemoryStream(Encoding.UTF8.GetBytes(privateKey));
            return new PrivateKeyFile(stream, string.IsNullOrEmpty(passphrase) ? null : passphrase);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw SshNetErrors.BadKey(ex, what);
        }
    }

    /// <summary>Loads a key file on the dashboard's host.</summary>
    public static IPrivateKeySource FromFile(string path, string? passphrase, string? certificate = null)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new SshConnectionException($"The key file {path} cannot be read by the dashboard: {ex.Message}", ex.Message, SshFailure.BadKey);
        }

        return FromText(text, passphrase, $"key file {path}", certificate);
    }

    /// <summary>The key's public fingerprint as <c>ssh-add -l</c> shows it: <c>SHA256:… (ED25519)</c>.</summary>
    public static string Fingerprint(IPrivateKeySource key)
    {
        var publicKey = HostKeyScanner.FromBlob(key.HostKeyAlgorithms.Last().Data); // after any certificate: the key alone
        var type = publicKey.Type;
        var kind = type switch
        {
            "ssh-ed25519" => "ED25519",
            "ssh-rsa" => "RSA",
            _ when type.StartsWith("ecdsa-", StringComparison.Ordinal) => "ECDSA",
            _ => type,
        };
        return $"{publicKey.Fingerprint} ({kind})";
    }
}
