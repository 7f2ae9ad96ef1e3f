using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Audit;

/// <summary>
/// A filter over the audit history, as the page's query string carries it. Times are UTC; the
/// search looks in the subject and the details (case-insensitive).
/// </summary>
public sealed record AuditFilter
{
    public string? Actor { get; init; }

    /// <summary>An exact action (<c>run.start</c>) or a family ending in a dot (<c>run.</c>).</summary>
    public string? Action { get; init; }

    public int? TargetId { get; init; }

    public DateTimeOffset? From { get; init; }

    public DateTimeOffset? To { get; init; }

    public string? Search { get; init; }

    /// <summary>Keyset paging: only events older than this sequence.</summary>
    public long? Before { get; init; }

    public static AuditFilter FromQuery(IQueryCollection q) =>
        FromValues(q["actor"], q["action"], q["target"], q["from"], q["to"], q["q"], q["before"]);

    /// <summary>A filter from the texts a query string or the page's fields carry (blank and unreadable values ignored).</summary>
    public static AuditFilter FromValues(string? actor, string? action, string? target, string? from, string? to, string? search, string? before) => new()
    {
        Actor = Text(actor),
        Action = Text(action),
        TargetId = int.TryParse(target, NumberStyles.None, CultureInfo.InvariantCulture, out var t) ? t : null,
        From = Time(from),
        To = Time(to),
        Search = Text(search),
        Before = long.TryParse(before, NumberStyles.None, CultureInfo.InvariantCulture, out var b) ? b : null,
    };

    /// <summary>The query string of this filter (without paging), for links that keep it.</summary>
    public string ToQuery(long? before = null)
    {
        var parts = new List<string>();
        void Add(string key, string? value)
        {
            if (!string.IsNullOrEmpty(value))
            {
                parts.Add($"{key}={Uri.EscapeDataString(value)}");
            }
        }

        Add("actor", Actor);
        Add("action", Action);
        Add("target", TargetId?.ToString(CultureInfo.InvariantCulture));
        Add("from", From?.ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture));
        Add("to", To?.ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture));
        Add("q", Search);
        Add("before", before?.ToString(CultureInfo.InvariantCulture));
        return parts.Count == 0 ? "" : "?" + string.Join('&', parts);
    }

    private static string? Text(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    /// <summary>A <c>datetime-local</c> value or an ISO date, read as UTC.</summary>
    private static DateTimeOffset? Time(string? value) =>
        DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at) ? at : null;
}

/// <summary>Reads the audit history (never writes it).</summary>
public sealed class AuditQuery(AppDbContext db)
{
    /// <summary>
    /// Matching events, newest first, streamed. Times are filtered while streaming: events are
    /// appended in time order (under the chain's lock), so the walk stops at the first event older
    /// than <see cref="AuditFilter.From"/>. This keeps one code path for SQLite, which cannot compare
    /// DateTimeOffset in SQL, and PostgreSQL.
    /// </summary>
    public async IAsyncEnumerable<AuditEvent> FindAsync(AuditFilter filter, [EnumeratorCancellation] CancellationToken ct)
    {
        // ToLower() below is translated to SQL lower() (both providers); culture rules do not apply.
#pragma warning disable CA1304, CA1311, CA1862
        var query = db.AuditEvents.AsNoTracking();
        if (filter.Before is { } before)
        {
            query = query.Where(e => e.Id < before);
        }

        if (filter.Actor is { } actor)
        {
            var lowered = actor.ToLowerInvariant();
            query = query.Where(e => e.Actor.ToLower().Contains(lowered));
        }

        if (filter.Action is { } action)
        {
            query = action.EndsWith('.') ? query.Where(e => e.Action.StartsWith(action)) : query.Where(e => e.Action == action);
        }

        if (filter.TargetId is { } target)
        {
            query = query.Where(e => e.TargetId == target);
        }

        if (filter.Search is { } search)
        {
            var lowered = search.ToLowerInvariant();
            query = query.Where(e => e.Details.ToLower().Contains(lowered) || (e.Subject != null && e.Subject.ToLower().Contains(lowered)));
        }

#pragma warning restore CA1304, CA1311, CA1862
        await foreach (var e in query.OrderByDescending(e => e.Id).AsAsyncEnumerable().WithCancellation(ct))
        {
            if (filter.To is { } to && e.At > to)
            {
                continue;
            }

            if (filter.From is { } from && e.At < from)
            {
                yield break;
            }

            yield return e;
        }
    }

    public async Task<List<AuditEvent>> PageAsync(AuditFilter filter, int size, CancellationToken ct)
    {
        var page = new List<AuditEvent>(size + 1);
        await foreach (var e in FindAsync(filter, ct))
        {
            page.Add(e);
            if (page.Count > size)
            {
                break;
            }
        }

        return page;
    }

    public Task<List<string>> ActionsAsync(CancellationToken ct) =>
        db.AuditEvents.Select(e => e.Action).Distinct().OrderBy(a => a).ToListAsync(ct);
}
