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
    /// Checks one event against the hash of the event before it (<paramref name="expectedSequence"/>
    /// and <paramref name="previousHash"/>); returns why it breaks the chain, or null when it holds.
    /// </summary>
    public static string? Problem(long expectedSequence, string previousHash, AuditRecord record, string storedPrevious, string storedHash)
    {
        if (record.Sequence != expectedSequence)
        {
            return record.Sequence > expectedSequence
                ? $"event {expectedSequence}{(record.Sequence - expectedSequence > 1 ? $" to {record.Sequence - 1}" : "")} missing"
                : $"sequence {record.Sequence} out of order";
        }

        if (storedPrevious != previousHash)
        {
            return "its previous-hash does not match the event before it (an event before it was changed, removed or inserted)";
        }

        return Hash(previousHash, record) != storedHash
            ? "its content does not match its hash (the event was changed)"
            : null;
    }

    /// <summary>
    /// Walks events in sequence order; returns the sequence of the first event whose stored
    /// previous-hash or hash does not match, or null when the whole chain holds.
    /// </summary>
    public static long? FirstBroken(IEnumerable<(AuditRecord Record, string PreviousHash, string Hash)> events)
    {
        var previous = Genesis;
        long expected = 1;
        foreach (var (record, storedPrevious, storedHash) in events)
        {
            if (Problem(expected, previous, record, storedPrevious, storedHash) is not null)
            {
                return Math.Min(record.Sequence, expected);
            }

            previous = storedHash;
            expected++;
        }

        return null;
    }
}
