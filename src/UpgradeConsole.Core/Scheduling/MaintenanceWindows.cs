using System.Globalization;
using System.Text.RegularExpressions;

namespace UpgradeConsole.Core.Scheduling;

/// <summary>One weekly window: from a day and time, for a duration under a day, in the target's time zone.</summary>
public sealed record MaintenanceWindow(DayOfWeek Day, TimeOnly Start, TimeSpan Duration, string Text)
{
    /// <summary>The end as a clock time (the next day when the window crosses midnight).</summary>
    public TimeOnly End => Start.Add(Duration);
}

/// <summary>
/// A target's weekly maintenance windows in its time zone. Written one per line:
/// <c>Sat 22:00-04:00</c> (ends the next day), <c>Mon-Fri 01:00-03:00</c>, <c>daily 02:00-04:00</c>.
/// No window at all: a run may start at any time. Pure: time comes in as a parameter.
/// </summary>
public sealed partial class MaintenanceWindows
{
    private static readonly string[] DayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

    private MaintenanceWindows(IReadOnlyList<MaintenanceWindow> windows, TimeZoneInfo zone, string text)
    {
        Windows = windows;
        Zone = zone;
        Text = text;
    }

    public IReadOnlyList<MaintenanceWindow> Windows { get; }

    public TimeZoneInfo Zone { get; }

    /// <summary>The lines as written (normalised), for the form.</summary>
    public string Text { get; }

    /// <summary>No window: no restriction.</summary>
    public bool Unrestricted => Windows.Count == 0;

    /// <summary>The default time zone when a target names none.</summary>
    public const string DefaultTimeZone = "UTC";

    /// <summary>Reads the windows and the time zone; an error names the first line it cannot read.</summary>
    public static bool TryParse(string? text, string? timeZone, out MaintenanceWindows windows, out string? error)
    {
        windows = new MaintenanceWindows([], TimeZoneInfo.Utc, "");
        error = null;
        if (!TryZone(timeZone, out var zone))
        {
            error = $"'{timeZone}' is not a time zone this server knows; use an IANA name such as Europe/Zurich or UTC.";
            return false;
        }

        var list = new List<MaintenanceWindow>();
        var lines = new List<string>();
        foreach (var raw in (text ?? "").Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0)
            {
                continue;
            }

            var match = LinePattern().Match(line);
            if (!match.Success || !TryDays(match.Groups["days"].Value, out var days)
                || !TryTime(match.Groups["from"].Value, out var from) || !TryTime(match.Groups["to"].Value, out var to) || from == to)
            {
                error = $"'{line}' is not a window: write a day (Mon…Sun, a range like Mon-Fri, or daily) and a time range such as 22:00-04:00.";
                return false;
            }

            // TimeOnly subtracts on a circular clock: 22:00 to 04:00 is six hours.
            var duration = to - from;
            var normalised = $"{match.Groups["days"].Value} {from:HH\\:mm}-{to:HH\\:mm}";
            list.AddRange(days.Select(d => new MaintenanceWindow(d, from, duration, normalised)));
            lines.Add(normalised);
        }

        windows = new MaintenanceWindows(list, zone, string.Join('\n', lines));
        return true;
    }

    /// <summary>Parses what was stored (validated when saved); unreadable text counts as no window.</summary>
    public static MaintenanceWindows Of(string? text, string? timeZone) =>
        TryParse(text, timeZone, out var windows, out _) ? windows : TryParse(null, timeZone, out windows, out _) ? windows : new([], TimeZoneInfo.Utc, "");

    /// <summary>The window open at <paramref name="at"/>: its start and end, or null.</summary>
    public (DateTimeOffset Start, DateTimeOffset End)? OpenAt(DateTimeOffset at)
    {
        if (Unrestricted)
        {
            return (at, DateTimeOffset.MaxValue);
        }

        var local = TimeZoneInfo.ConvertTime(at, Zone);
        // A window that opened yesterday may still be open; look from the day before.
        foreach (var (start, end) in Occurrences(DateOnly.FromDateTime(local.DateTime).AddDays(-1), 3))
        {
            if (start <= at && at < end)
            {
                return (start, end);
            }
        }

        return null;
    }

    /// <summary>The first window that opens at or after <paramref name="from"/> (or is open then).</summary>
    public (DateTimeOffset Start, DateTimeOffset End)? Next(DateTimeOffset from)
    {
        if (Unrestricted)
        {
            return (from, DateTimeOffset.MaxValue);
        }

        if (OpenAt(from) is { } open)
        {
            return open;
        }

        var local = TimeZoneInfo.ConvertTime(from, Zone);
        return Occurrences(DateOnly.FromDateTime(local.DateTime), 8).Where(o => o.Start >= from).OrderBy(o => o.Start).First();
    }

    /// <summary>
    /// Reads a time as people and scripts write it: ISO 8601 with an offset or Z (an instant), or without one
    /// (a wall-clock time in the target's time zone, e.g. 2026-11-30T22:00 or 2026-11-30 22:00).
    /// </summary>
    public bool TryParseTime(string? text, out DateTimeOffset at)
    {
        at = default;
        if (string.IsNullOrWhiteSpace(text)
            || !DateTime.TryParse(text.Trim(), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind | DateTimeStyles.AllowWhiteSpaces, out var parsed))
        {
            return false;
        }

        if (parsed.Kind != DateTimeKind.Unspecified)
        {
            return DateTimeOffset.TryParse(text.Trim(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out at);
        }

        at = Instant(parsed);
        return true;
    }

    /// <summary>"Sat 22:00-04:00; Mon-Fri 01:00-03:00 (Europe/Zurich)", or "any time".</summary>
    public string Describe() => Unrestricted ? "any time" : $"{string.Join("; ", Text.Split('\n'))} ({Zone.Id})";

    /// <summary>A time as the target's people read it: "Sat 28 Nov 2026 22:00 Europe/Zurich".</summary>
    public string Local(DateTimeOffset at) =>
        TimeZoneInfo.ConvertTime(at, Zone).ToString("ddd d MMM yyyy HH:mm", CultureInfo.InvariantCulture) + " " + Zone.Id;

    /// <summary>
    /// Why a run may not start (or cross its point of no return) at <paramref name="at"/>, or null when a
    /// window is open then. One sentence with the windows and the next opening.
    /// </summary>
    public string? Refusal(DateTimeOffset at, string what)
    {
        if (OpenAt(at) is not null)
        {
            return null;
        }

        var next = Next(at);
        return $"{what} only inside the target's maintenance windows, {Describe()}; {Local(at)} is outside them" +
            (next is { } n ? $", and the next one opens {Local(n.Start)}." : ".");
    }

    private IEnumerable<(DateTimeOffset Start, DateTimeOffset End)> Occurrences(DateOnly firstDay, int days)
    {
        for (var i = 0; i < days; i++)
        {
            var day = firstDay.AddDays(i);
            foreach (var window in Windows.Where(w => w.Day == day.DayOfWeek))
            {
                var start = Instant(day.ToDateTime(window.Start));
                var end = Instant(day.ToDateTime(window.Start).Add(window.Duration));
                yield return (start, end);
            }
        }
    }

    /// <summary>A wall-clock time in the zone as an instant; a time skipped by a clock change counts from the change.</summary>
    private DateTimeOffset Instant(DateTime wall)
    {
        var unspecified = DateTime.SpecifyKind(wall, DateTimeKind.Unspecified);
        while (Zone.IsInvalidTime(unspecified))
        {
            unspecified = unspecified.AddMinutes(15);
        }

        return new DateTimeOffset(unspecified, Zone.GetUtcOffset(unspecified));
    }

    private static bool TryZone(string? id, out TimeZoneInfo zone)
    {
        zone = TimeZoneInfo.Utc;
        if (string.IsNullOrWhiteSpace(id))
        {
            return true;
        }

        if (!TimeZoneInfo.TryFindSystemTimeZoneById(id.Trim(), out var found))
        {
            return false;
        }

        zone = found;
        return true;
    }

    private static bool TryDays(string text, out DayOfWeek[] days)
    {
        days = [];
        var lower = text.ToLowerInvariant();
        if (lower is "daily" or "every day")
        {
            days = Enum.GetValues<DayOfWeek>();
            return true;
        }

        var parts = lower.Split('-');
        var first = Array.IndexOf(DayNames, parts[0].Length >= 3 ? parts[0][..3] : "");
        var last = parts.Length == 2 ? Array.IndexOf(DayNames, parts[1].Length >= 3 ? parts[1][..3] : "") : first;
        if (parts.Length > 2 || first < 0 || last < 0)
        {
            return false;
        }

        var list = new List<DayOfWeek>();
        for (var d = first; ; d = (d + 1) % 7)
        {
            list.Add((DayOfWeek)d);
            if (d == last)
            {
                break;
            }
        }

        days = [.. list];
        return true;
    }

    private static bool TryTime(string text, out TimeOnly time) =>
        TimeOnly.TryParseExact(text, ["H:mm", "HH:mm"], CultureInfo.InvariantCulture, DateTimeStyles.None, out time);

    [GeneratedRegex(@"^(?<days>[A-Za-z]+(?:-[A-Za-z]+)?|every day)\s+(?<from>\d{1,2}:\d{2})\s*(?:-|–|to)\s*(?<to>\d{1,2}:\d{2})$")]
    private static partial Regex LinePattern();
}
