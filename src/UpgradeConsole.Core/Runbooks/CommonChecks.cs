namespace UpgradeConsole.Core.Runbooks;

/// <summary>Preflight checks every product's preflight has, whatever the product: the dashboard's own.</summary>
public static class CommonChecks
{
    /// <summary>No other run is planned or running on the target (the database enforces it too).</summary>
    public const string ActiveRun = "runs.active";

    /// <summary>The target answered and could be read; when it fails it is the only check.</summary>
    public const string TargetReachable = "target.reachable";
}
