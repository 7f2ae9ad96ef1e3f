using System.Diagnostics;

namespace UpgradeConsole.Core.Remote;

/// <summary>What "Test connection" found on a target.</summary>
public sealed record ConnectionProbeResult(
    string Uname,
    string RemoteUser,
    string? Python,
    string? PythonVersion,
    TimeSpan RoundTrip,
    TimeSpan FirstConnection);

public static class ConnectionProbe
{
    /// <summary>
    /// Runs <c>uname -a</c>, <c>id -un</c> and looks for a Python; the round trip is measured on an
    /// established connection (the time of a trivial command), separately from the first connection.
    /// </summary>
    public static async Task<ConnectionProbeResult> RunAsync(IRemoteShell shell, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var facts = await shell.RunAsync("""
            uname -a
            id -un
            py=$(command -v python3 || command -v python || true)
            echo "$py"
            if [ -n "$py" ]; then "$py" --version 2>&1; else echo; fi
            """, ct, TimeSpan.FromSeconds(60));
        var first = clock.Elapsed;
        if (facts.ExitCode != 0)
        {
            throw new RemoteCommandException("The test commands failed on the target: " + facts.StandardError.Trim(), facts.ExitCode, facts.StandardError);
        }

        var best = TimeSpan.MaxValue;
        for (var i = 0; i < 3; i++)
        {
            var ping = await shell.RunAsync("true", ct, TimeSpan.FromSeconds(30));
            best = ping.Elapsed < best ? ping.Elapsed : best;
        }

        var lines = facts.Output.Split('\n');
        string Line(int i) => i < lines.Length ? lines[i].Trim() : "";
        return new ConnectionProbeResult(
            Line(0),
            Line(1),
            Line(2) is { Length: > 0 } py ? py : null,
            Line(3) is { Length: > 0 } version ? version : null,
            best,
            first);
    }
}
