using System.Globalization;
using System.Text.RegularExpressions;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Runbooks;

/// <summary>The parts of a rehearsal's phases every product shares (issue 18): the restore's report and where its copy is.</summary>
public static partial class RehearsalSteps
{
    /// <summary>Where a throwaway cluster listens on the target.</summary>
    public const string ClusterHost = "127.0.0.1";

    /// <summary>
    /// The restore step (<see cref="RehearsalScripts.Restore"/> after the product's header): its message says where the
    /// copy is, the production server or the throwaway cluster with its port (read back by <see cref="ClusterPort"/>).
    /// </summary>
    public static RemoteScript Restore(string script, IReadOnlyDictionary<string, string>? environment, string scratchDatabase)
    {
        int? port = null;
        return new RemoteScript(script, environment)
        {
            OnLine = line =>
            {
                if (line.StartsWith(RehearsalScripts.ClusterMarker, StringComparison.Ordinal)
                    && int.TryParse(line.AsSpan(RehearsalScripts.ClusterMarker.Length).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var p))
                {
                    port = p;
                }
            },
            Succeeded = () => Task.FromResult(port is { } p
                ? PhaseOutcome.Done($"restored into {scratchDatabase} in the throwaway cluster on {ClusterHost}:{p}")
                : PhaseOutcome.Done($"restored into {scratchDatabase} on the production server")),
        };
    }

    /// <summary>The throwaway cluster's port on the target, as the restore phase recorded it; null when the copy is on the production server.</summary>
    public static int? ClusterPort(Run run) =>
        run.Phases.FirstOrDefault(p => p.Key == "rehearsal-restore" && !p.IsRollback)?.Message is { } message
        && ClusterPortPattern().Match(message) is { Success: true } m
            ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)
            : null;

    [GeneratedRegex(@"throwaway cluster on 127\.0\.0\.1:([0-9]{1,5})\b")]
    private static partial Regex ClusterPortPattern();
}
