using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace UpgradeConsole.Core.Audit;

/// <summary>The fields of an audit event that its hash covers.</summary>
public sealed record AuditRecord(
    long Sequence,
    DateTimeOffset At,
    string Actor,
    string Action,
    int? TargetId,
    string? Subject,
    string Details);

/// <summary>
/// The hash chain of the audit history: each event's hash is SHA-256 over the previous event's
/// hash and the event's own canonical form, so altering, removing or reordering any stored event
/// breaks every hash after it.
/// </summary>
public static class AuditChain
{
    /// <summary>The "previous hash" of the first event.</summary>
    public const string Genesis = "0000000000000000000000000000000000000000000000000000000000000000";

    /// <summary>One canonical serialization: fixed field order, UTC time to the microsecond (what PostgreSQL keeps), details as stored.</summary>
    public static string Canonical(AuditRecord record) =>
        JsonSerializer.Serialize(new object?[]
        {
            record.Sequence,
            record.At.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture),
            record.Actor,
            record.Action,
            record.TargetId,
            record.Subject,
            record.Details,
        });

    public static string Hash(string previousHash, AuditRecord record) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(previousHash + "\n" + Canonical(record))));

    /// <summary>
    /// Walks events in sequence order; returns the sequence of the first event whose stored
    /// previous-hash or hash does not match, or null when the whole chain holds.
    /// </summary>
    public static long? FirstBroken(IEnumerable<(AuditRecord Record, string PreviousHash, string Hash)> events)
    {
        var previous = Genesis;
        foreach (var (record, storedPrevious, storedHash) in events)
        {
            if (storedPrevious != previous || Hash(previous, record) != storedHash)
            {
                return record.Sequence;
            }

            previous = storedHash;
        }

        return null;
    }
}
