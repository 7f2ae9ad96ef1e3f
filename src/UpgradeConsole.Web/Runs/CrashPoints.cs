using System.Diagnostics;

namespace UpgradeConsole.Web.Runs;

/// <summary>
/// Fault injection for the crash tests (ADR 0019): when the environment variable
/// <see cref="Variable"/> names a point, the dashboard kills itself with SIGKILL the moment it gets
/// there, exactly like a crash or an OOM kill, so a test can aim a kill at a window a few milliseconds
/// wide. Unset (always, outside those tests) nothing happens. Points, comma-separated:
/// <c>line:TEXT</c> (right after a log chunk holding TEXT is committed), <c>changed:PHASE</c> (right after
/// a builtin phase changed the target, before anything else is stored), <c>started:PHASE</c> (right after
/// a phase's header and running state are committed).
/// </summary>
public static class CrashPoints
{
    public const string Variable = "UPGRADECONSOLE_CRASH_AT";

    private static readonly string[] Points = (Environment.GetEnvironmentVariable(Variable) ?? "")
        .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static bool Armed => Points.Length > 0;

    /// <summary>Dies here if <paramref name="point"/> is armed.</summary>
    public static void Reached(string point)
    {
        if (Armed && Points.Contains(point, StringComparer.Ordinal))
        {
            Die(point);
        }
    }

    /// <summary>Dies here if an armed <c>line:</c> point's text is in <paramref name="stored"/> (just committed).</summary>
    public static void Stored(string stored)
    {
        if (!Armed)
        {
            return;
        }

        foreach (var point in Points)
        {
            if (point.StartsWith("line:", StringComparison.Ordinal) && stored.Contains(point[5..], StringComparison.Ordinal))
            {
                Die(point);
            }
        }
    }

    private static void Die(string point)
    {
        Console.Error.WriteLine($"[crash point] {point}: killing the dashboard (SIGKILL)");
        Console.Error.Flush();
        using var self = Process.GetCurrentProcess();
        self.Kill();
    }
}
