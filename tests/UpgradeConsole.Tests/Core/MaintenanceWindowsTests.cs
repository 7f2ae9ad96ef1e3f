using UpgradeConsole.Core.Scheduling;

namespace UpgradeConsole.Tests.Core;

public sealed class MaintenanceWindowsTests
{
    // Saturday 28 November 2026.
    private static DateTimeOffset Utc(int day, int hour, int minute = 0) => new(2026, 11, day, hour, minute, 0, TimeSpan.Zero);

    [Fact]
    public void OpenAt_WindowCrossingMidnight_IsOpenOnTheNextMorningAndClosedAfter()
    {
        Assert.True(MaintenanceWindows.TryParse("Sat 22:00-04:00", "UTC", out var windows, out var error), error);
        Assert.NotNull(windows.OpenAt(Utc(28, 23)));
        Assert.NotNull(windows.OpenAt(Utc(29, 3, 59)));
        Assert.Null(windows.OpenAt(Utc(29, 4)));
        Assert.Null(windows.OpenAt(Utc(28, 21, 59)));
        Assert.Equal(Utc(29, 4), windows.OpenAt(Utc(28, 22))!.Value.End);
    }

    [Fact]
    public void OpenAt_DayRangeInATimeZone_FollowsTheZone()
    {
        Assert.True(MaintenanceWindows.TryParse("Mon-Fri 01:00-03:00", "Europe/Zurich", out var windows, out var error), error);
        // 01:30 in Zurich (UTC+1 in winter) on Monday 30 November is 00:30 UTC.
        Assert.NotNull(windows.OpenAt(Utc(30, 0, 30)));
        Assert.Null(windows.OpenAt(Utc(30, 2, 30)));
        // Saturday is outside Mon-Fri.
        Assert.Null(windows.OpenAt(Utc(28, 0, 30)));
        Assert.Equal(Utc(30, 0), windows.Next(Utc(28, 12))!.Value.Start);
    }

    [Fact]
    public void Refusal_OutsideEveryWindow_IsOneSentenceWithTheWindowsAndTheNextOpening()
    {
        Assert.True(MaintenanceWindows.TryParse("daily 02:00-04:00", "UTC", out var windows, out _));
        var refusal = windows.Refusal(Utc(28, 12), "This run may start");
        Assert.Equal("This run may start only inside the target's maintenance windows, daily 02:00-04:00 (UTC); Sat 28 Nov 2026 12:00 UTC is outside them, and the next one opens Sun 29 Nov 2026 02:00 UTC.", refusal);
        Assert.Null(windows.Refusal(Utc(28, 3), "This run may start"));
    }

    [Fact]
    public void TryParse_NoWindow_AllowsAnyTime()
    {
        Assert.True(MaintenanceWindows.TryParse("  \n", null, out var windows, out _));
        Assert.True(windows.Unrestricted);
        Assert.Null(windows.Refusal(Utc(28, 12), "x"));
    }

    [Theory]
    [InlineData("Sat 22:00", null, "is not a window")]
    [InlineData("Someday 22:00-23:00", null, "is not a window")]
    [InlineData("Sat 22:00-22:00", null, "is not a window")]
    [InlineData("Sat 22:00-23:00", "Mars/Olympus", "is not a time zone")]
    public void TryParse_Nonsense_NamesWhatIsWrong(string text, string? zone, string expected)
    {
        Assert.False(MaintenanceWindows.TryParse(text, zone, out _, out var error));
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void TryParseTime_WithoutOffset_IsReadInTheTargetsZone()
    {
        Assert.True(MaintenanceWindows.TryParse("", "Europe/Zurich", out var windows, out _));
        Assert.True(windows.TryParseTime("2026-11-30T22:00", out var local));
        Assert.Equal(Utc(30, 21), local);
        Assert.True(windows.TryParseTime("2026-11-30T22:00:00Z", out var utc));
        Assert.Equal(Utc(30, 22), utc);
        Assert.True(windows.TryParseTime("2026-11-30T22:00:00+02:00", out var offset));
        Assert.Equal(Utc(30, 20), offset);
        Assert.False(windows.TryParseTime("tomorrow-ish", out _));
    }
}
