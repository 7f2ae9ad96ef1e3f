using System.Security.Cryptography;
using System.Text;
using System.Xml.Linq;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Web.Hosting;

namespace UpgradeConsole.Web.Persistence;

/// <summary>
/// The key-encryption key that seals the Data Protection key ring in the database (ADR 0013): the ring
/// protects sign-in cookies and the SSH private keys admins store, so a copy of the database alone
/// must decrypt nothing. It never lives in the database: it comes from configuration
/// (<c>UpgradeConsole:KeyEncryptionKey</c>, base64 of 32 bytes, e.g. an environment variable) or a file
/// (<c>UpgradeConsole:KeyEncryptionKeyFile</c>; on SQLite by default <c>keyring.kek</c> in the data
/// directory, created 0600 on first use). PostgreSQL — production, several nodes sharing one ring —
/// refuses to start without one configured explicitly, since every node needs the same key.
/// </summary>
public sealed class KeyEncryptionKey
{
    public const string ValueSetting = "UpgradeConsole:KeyEncryptionKey";
    public const string FileSetting = "UpgradeConsole:KeyEncryptionKeyFile";
    public const string DefaultFileName = "keyring.kek";

    private readonly Lazy<byte[]> _key;

    private KeyEncryptionKey(string source, Func<byte[]> load)
    {
        Source = source;
        _key = new Lazy<byte[]>(load, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>Where the key comes from, for messages (never the key).</summary>
    public string Source { get; }

    public byte[] Key => _key.Value;

    /// <summary>A short, non-secret name of the key, stored beside what it sealed so a mismatch can be named.</summary>
    public string Fingerprint => Convert.ToHexStringLower(SHA256.HashData([.. "UpgradeConsole.KEK.v1"u8, .. Key]))[..12];

    public static KeyEncryptionKey Resolve(IConfiguration configuration, DataDirectory data, DatabaseProvider provider)
    {
        if (configuration[ValueSetting] is { Length: > 0 } value)
        {
            var key = Parse(value.Trim(), ValueSetting);
            return new KeyEncryptionKey(ValueSetting, () => key);
        }

        if (configuration[FileSetting] is { Length: > 0 } configured)
        {
            var path = Path.GetFullPath(configured);
            if (!File.Exists(path))
            {
                throw new StartupConfigurationException($"{FileSetting} is {path}, which does not exist. Restore it from your backup, or create one with: (umask 077; openssl rand -base64 32 > {path})");
            }

            return new KeyEncryptionKey(path, () => ReadFile(path));
        }

        if (provider == DatabaseProvider.PostgreSQL)
        {
            throw new StartupConfigurationException(
                $"On PostgreSQL the key ring that protects cookies and stored SSH keys must be sealed with a key-encryption key kept outside the database and the same on every node: " +
                $"set {ValueSetting} (base64 of 32 random bytes, e.g. `openssl rand -base64 32`; environment: UpgradeConsole__KeyEncryptionKey) or {FileSetting}, and back it up apart from the database.");
        }

        var file = data.Combine(DefaultFileName);
        return new KeyEncryptionKey(file, () => ReadOrCreateFile(file));
    }

    private static byte[] Parse(string base64, string source)
    {
        byte[] key;
        try
        {
            key = Convert.FromBase64String(base64);
        }
        catch (FormatException)
        {
            throw new StartupConfigurationException($"{source} is not base64; give 32 random bytes in base64 (openssl rand -base64 32).");
        }

        return key.Length == 32 ? key : throw new StartupConfigurationException($"{source} holds {key.Length} bytes; the key-encryption key must be 32 (openssl rand -base64 32).");
    }

    private static byte[] ReadFile(string path)
    {
        DataDirectory.MakePrivateFile(path);
        return Parse(File.ReadAllText(path).Trim(), path);
    }

    private static byte[] ReadOrCreateFile(string path)
    {
        if (!File.Exists(path))
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            try
            {
                using var stream = new FileStream(path, options);
                stream.Write(Encoding.ASCII.GetBytes(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) + "\n"));
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another process of this dashboard created it first: use theirs.
            }
        }

        return ReadFile(path);
    }
}

/// <summary>Seals and opens key ring entries: AES-256-GCM under the key-encryption key, the whole key XML inside.</summary>
internal static class KeyRingSeal
{
    private const string Element = "sealedKeyRingEntry";
    private static readonly byte[] Context = "UpgradeConsole.KeyRing.v1"u8.ToArray();

    public static bool IsSealed(string xml) => xml.StartsWith("<" + Element, StringComparison.Ordinal);

    public static string Seal(XElement entry, KeyEncryptionKey kek)
    {
        var plain = Encoding.UTF8.GetBytes(entry.ToString(SaveOptions.DisableFormatting));
        var nonce = RandomNumberGenerator.GetBytes(AesGcm.NonceByteSizes.MaxSize);
        var cipher = new byte[plain.Length];
        var tag = new byte[AesGcm.TagByteSizes.MaxSize];
        using (var aes = new AesGcm(kek.Key, tag.Length))
        {
            aes.Encrypt(nonce, plain, cipher, tag, Context);
        }

        return new XElement(Element, new XAttribute("version", 1), new XAttribute("kek", kek.Fingerprint),
            Convert.ToBase64String([.. nonce, .. tag, .. cipher])).ToString(SaveOptions.DisableFormatting);
    }

    public static XElement Open(string xml, KeyEncryptionKey kek)
    {
        if (!IsSealed(xml))
        {
            return XElement.Parse(xml);
        }

        var sealedEntry = XElement.Parse(xml);
        var data = Convert.FromBase64String(sealedEntry.Value);
        var nonce = data.AsSpan(0, AesGcm.NonceByteSizes.MaxSize);
        var tag = data.AsSpan(nonce.Length, AesGcm.TagByteSizes.MaxSize);
        var cipher = data.AsSpan(nonce.Length + tag.Length);
        var plain = new byte[cipher.Length];
        try
        {
            using var aes = new AesGcm(kek.Key, tag.Length);
            aes.Decrypt(nonce, cipher, tag, plain, Context);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new StartupConfigurationException(
                $"The key ring in the database is sealed with key-encryption key {(string?)sealedEntry.Attribute("kek") ?? "?"}, but the configured one ({kek.Source}) is {kek.Fingerprint}. " +
                "Restore the key-encryption key that was backed up with this database; without it, cookies and stored SSH keys cannot be read.");
        }

        return XElement.Parse(Encoding.UTF8.GetString(plain));
    }

    /// <summary>At start: every entry must open with the configured key; entries stored before the ring was sealed are sealed now.</summary>
    public static async Task CheckAndSealAsync(AppDbContext db, KeyEncryptionKey kek, CancellationToken ct)
    {
        var rows = await db.DataProtectionKeys.ToListAsync(ct);
        foreach (var row in rows)
        {
            var entry = Open(row.Xml, kek);
            if (!IsSealed(row.Xml))
            {
                row.Xml = Seal(entry, kek);
            }
        }

        await db.SaveChangesAsync(ct);
    }
}
