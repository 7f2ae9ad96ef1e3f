using UpgradeConsole.Web.Runbooks;

namespace UpgradeConsole.Web.BackendAi;

/// <summary>A Backend.AI cluster, plugged in: a target that is a set of hosts, their discovery and the workload check.</summary>
public sealed class BackendAiProduct : IProduct
{
    public const string ProductId = "backend.ai";

    public static BackendAiProduct Instance { get; } = new();

    public string Id => ProductId;

    public string Title => "Backend.AI cluster";

    /// <summary>The minor (rolling) and major (downtime) runbooks, their host phases on the fleet executor.</summary>
    public IReadOnlyList<RunbookDefinition> Runbooks => BackendAiRunbooks.All;

    public IReadOnlyList<ProductPage> TargetPages { get; } = [];

    public Type? TargetSection => typeof(ClusterSection);

    /// <summary>The target's own address is the manager's; the cluster's hosts (each with its own settings) are listed on the target page.</summary>
    public TargetFieldWords TargetFields { get; } = new()
    {
        HostPlaceholder = "manager.example.org (the cluster's hosts are added on the target page)",
        NamePlaceholder = "backend-ai-prod",
        WorkingDirectory = "Working directory on the manager",
        WorkingDirectoryPlaceholder = "/opt/backend.ai",
        PythonPath = "Python of the manager's environment (each host has its own, set with the hosts)",
        PythonPlaceholder = "/opt/backend.ai/manager/venv/bin/python",
        UsesEnvFileAndServiceCommands = false,
        Rehearses = false,
    };
}
