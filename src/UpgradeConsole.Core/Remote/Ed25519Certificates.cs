using System.Buffers.Binary;
using System.Text;
using Renci.SshNet;
using Renci.SshNet.Security;
using Renci.SshNet.Security.Cryptography;

namespace UpgradeConsole.Core.Remote;

/// <summary>
/// Ed25519 certificates, read around a fault of SSH.NET 2026.0.0. SSH.NET reads the key inside a certificate as a
/// signed number, so an Ed25519 key whose first byte is 0xFF and whose second is 0x80 or more (one key in 512) loses
/// its first byte: <c>new PrivateKeyFile(key, passphrase, certificate)</c> then throws "The supplied certificate does
/// not certify the supplied key", and a host certificate for such a host key fails the key exchange's signature check.
/// The key's bytes are read here from the certificate's own wire form (PROTOCOL.certkeys: string type, string nonce,
/// string pk, …), so every Ed25519 key works.
/// </summary>
public static class Ed25519Certificates
{
    public const string Algorithm = "ssh-ed25519-cert-v01@openssh.com";

    /// <summary>The 32 bytes of the Ed25519 key an Ed25519 certificate certifies, read from its wire form.</summary>
    public static byte[] CertifiedKey(byte[] blob)
    {
        var offset = 0;
        var type = Encoding.ASCII.GetString(ReadString(blob, ref offset));
        if (type != Algorithm)
        {
            throw new ArgumentException($"A {type} certificate is not an Ed25519 one.", nameof(blob));
        }

        _ = ReadString(blob, ref offset); // the nonce
        var key = ReadString(blob, ref offset);
        return key.Length == 32 ? key.ToArray() : throw new ArgumentException($"An Ed25519 key is 32 bytes, not {key.Length}.", nameof(blob));
    }

    /// <summary>The Ed25519 key a certificate certifies, as SSH.NET checks a signature with it.</summary>
    public static ED25519Key PublicKeyOf(byte[] blob) => new(new SshKeyData(PlainBlob(CertifiedKey(blob))));

    /// <summary>
    /// A private key offered with its Ed25519 user certificate (the certificate first, then the key alone, as
    /// <see cref="PrivateKeyFile"/> offers them), once the certificate is checked to certify that key.
    /// </summary>
    /// <returns>Null, with <paramref name="problem"/> saying why, when the certificate is for another key.</returns>
    /// <param name="key">The private key, as SSH.NET read it.</param>
    /// <param name="blob">The certificate's wire form (the base64 of its <c>-cert.pub</c> line, decoded).</param>
    /// <param name="problem">Why the certificate does not go with the key; null when it does.</param>
    public static IPrivateKeySource? WithUserCertificate(PrivateKeyFile key, byte[] blob, out string? problem)
    {
        problem = null;
        if (key.Key is not ED25519Key ed25519)
        {
            problem = $"The certificate is for an Ed25519 key; the private key is {key.Key}.";
            return null;
        }

        var certified = CertifiedKey(blob);
        if (!certified.AsSpan().SequenceEqual(ed25519.PublicKey))
        {
            problem = $"The certificate certifies the key {Fingerprint(certified)}, not this private key ({Fingerprint(ed25519.PublicKey)}).";
            return null;
        }

        return new CertifiedKeySource([new CertificateHostAlgorithm(Algorithm, key.Key, new Certificate(blob)), .. key.HostKeyAlgorithms]);
    }

    /// <summary>
    /// Replaces SSH.NET's reader of Ed25519 host certificates with one that checks the key exchange's signature against
    /// the certificate's key as its bytes stand (the CA's signature is still checked by SSH.NET, with the plain
    /// algorithms of <paramref name="info"/>).
    /// </summary>
    public static void ReadHostCertificatesWhole(ConnectionInfo info)
    {
        if (!info.HostKeyAlgorithms.ContainsKey(Algorithm))
        {
            return;
        }

        var algorithms = (IReadOnlyDictionary<string, Func<byte[], KeyHostAlgorithm>>)info.HostKeyAlgorithms;
        info.HostKeyAlgorithms[Algorithm] = data =>
        {
            var certificate = new Certificate(data);
            return new CertificateHostAlgorithm(Algorithm, certificate, new ED25519DigitalSignature(PublicKeyOf(data)), algorithms);
        };
    }

    /// <summary>The public key blob of an Ed25519 key: string "ssh-ed25519", string key.</summary>
    private static byte[] PlainBlob(byte[] key)
    {
        var name = "ssh-ed25519"u8;
        var blob = new byte[4 + name.Length + 4 + key.Length];
        BinaryPrimitives.WriteInt32BigEndian(blob, name.Length);
        name.CopyTo(blob.AsSpan(4));
        BinaryPrimitives.WriteInt32BigEndian(blob.AsSpan(4 + name.Length), key.Length);
        key.CopyTo(blob.AsSpan(8 + name.Length));
        return blob;
    }

    private static string Fingerprint(byte[] key) => HostKeyScanner.FromBlob(PlainBlob(key)).Fingerprint;

    private static ReadOnlySpan<byte> ReadString(byte[] blob, ref int offset)
    {
        if (blob.Length - offset < 4)
        {
            throw new ArgumentException("The certificate ends before its key.");
        }

        var length = BinaryPrimitives.ReadInt32BigEndian(blob.AsSpan(offset));
        if (length < 0 || length > blob.Length - offset - 4)
        {
            throw new ArgumentException("The certificate ends before its key.");
        }

        var value = blob.AsSpan(offset + 4, length);
        offset += 4 + length;
        return value;
    }

    private sealed class CertifiedKeySource(IReadOnlyCollection<HostAlgorithm> algorithms) : IPrivateKeySource
    {
        public IReadOnlyCollection<HostAlgorithm> HostKeyAlgorithms { get; } = algorithms;
    }
}
