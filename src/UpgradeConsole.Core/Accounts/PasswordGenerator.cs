using System.Security.Cryptography;

namespace UpgradeConsole.Core.Accounts;

/// <summary>Generates passwords and one-time tokens from the OS random source.</summary>
public static class PasswordGenerator
{
    // No look-alike characters (0/O, 1/l/I): generated passwords are read off a screen and typed.
    private const string Alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

    /// <summary>A password of <paramref name="length"/> characters (~5.8 bits each).</summary>
    public static string NewPassword(int length = 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 12);
        return RandomNumberGenerator.GetString(Alphabet, length);
    }

    /// <summary>A URL-safe token carrying <paramref name="bytes"/> random bytes.</summary>
    public static string NewToken(int bytes = 32)
    {
        var buffer = RandomNumberGenerator.GetBytes(bytes);
        return Convert.ToBase64String(buffer).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }
}
