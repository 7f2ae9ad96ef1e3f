using System.Text.RegularExpressions;

namespace UpgradeConsole.Core.Remote;

/// <summary>
/// Where a step lives on the target: <c>&lt;runs directory&gt;/&lt;run&gt;/&lt;step&gt;/</c>, holding its
/// script, start marker, log, pid and exit-code files.
/// </summary>
public sealed partial record StepLocation
{
    public const string DefaultRunsDirectory = "~/.upgradeconsole/runs";

    public StepLocation(string runsDirectory, string runId, string stepId)
    {
        if (!IsValidId(runId))
        {
            throw new ArgumentException($"Run id '{runId}' may only hold letters, digits, '.', '_' and '-'.", nameof(runId));
        }

        if (!IsValidId(stepId))
        {
            throw new ArgumentException($"Step id '{stepId}' may only hold letters, digits, '.', '_' and '-'.", nameof(stepId));
        }

        if (!(runsDirectory.StartsWith('/') || runsDirectory.StartsWith("~/", StringComparison.Ordinal)) || runsDirectory.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"The runs directory '{runsDirectory}' must be absolute or start with ~/.", nameof(runsDirectory));
        }

        RunsDirectory = runsDirectory.TrimEnd('/');
        RunId = runId;
        StepId = stepId;
    }

    public string RunsDirectory { get; }

    public string RunId { get; }

    public string StepId { get; }

    /// <summary>The step directory as a shell word (home-relative paths still expand <c>$HOME</c>).</summary>
    public string ShellWord => ShellWords.QuotePath($"{RunsDirectory}/{RunId}/{StepId}");

    public override string ToString() => $"{RunsDirectory}/{RunId}/{StepId}";

    public static bool IsValidId(string id) => IdPattern().IsMatch(id) && id is not "." and not "..";

    [GeneratedRegex("^[A-Za-z0-9._-]{1,100}$")]
    private static partial Regex IdPattern();
}

/// <summary>A script to run detached on a target.</summary>
public sealed record RemoteStep
{
    public required StepLocation Location { get; init; }

    /// <summary>The script, run by bash. It never appears on a command line.</summary>
    public required string Script { get; init; }

    /// <summary>Variables exported to the script, values taken literally (no expansion of any kind).</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>Directory the script starts in (absolute or <c>~/…</c>); the home directory when null.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>After this long the step's process group is stopped (TERM, then KILL) and it exits with 124.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>Run the script as this user through <c>sudo -n -u</c>; as the SSH user when null.</summary>
    public string? RunAsUser { get; init; }
}

/// <summary>One line of a step's combined output and where it sits in the remote log file.</summary>
/// <param name="Offset">Byte offset of the line's first byte.</param>
/// <param name="NextOffset">Byte offset just after the line (and its newline): where to resume.</param>
/// <param name="Text">The line without its newline, UTF-8 decoded (invalid bytes replaced), ANSI codes kept.</param>
public sealed record RemoteLogLine(long Offset, long NextOffset, string Text);

public enum RemoteStepState
{
    /// <summary>No start marker: the step never started.</summary>
    NotStarted,

    /// <summary>Started and its process is alive.</summary>
    Running,

    /// <summary>Ended; its exit code is known.</summary>
    Exited,

    /// <summary>Started, not running, no exit code: the outcome is unknown (host rebooted, process killed hard).</summary>
    Lost,
}

public sealed record RemoteStepStatus(
    RemoteStepState State,
    int? ExitCode,
    long LogSize,
    int? ProcessId,
    bool Cancelled,
    bool TimedOut);
