using System.Globalization;
using System.Net;
using System.Net.Http.Json;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>A Backend.AI target for a <see cref="BackendAiCluster"/>: the target (the manager's address), then every host pasted with its pinned key and the cluster's templates.</summary>
public static class BackendAiTarget
{
    /// <summary>Adds the target and its hosts; <paramref name="requireApproval"/>: a second person approves each run before it starts.</summary>
    public static async Task<int> AddAsync(UpgradeConsoleApplicationFactory app, HttpClient api, BackendAiCluster cluster, bool requireApproval = false)
    {
        var targetId = await app.AddTargetAsync(new()
        {
            ["Name"] = "bai-" + Guid.NewGuid().ToString("N")[..8],
            ["Product"] = "backend.ai",
            ["Host"] = cluster.Manager.Ssh.Host,
            ["Port"] = cluster.Manager.Ssh.Port.ToString(CultureInfo.InvariantCulture),
            ["SshUser"] = cluster.User,
            ["PrivateKey"] = cluster.ClientKey,
            ["WorkingDirectory"] = "/opt/backend.ai",
            ["PipOptions"] = $"--no-index --find-links {cluster.Wheels}",
            ["RequireApproval"] = requireApproval ? "true" : "false",
        });
        using var added = await api.PostAsJsonAsync($"/api/v1/targets/{targetId}/hosts/paste", new
        {
            text = await cluster.HostListWithFingerprintsAsync(),
            pythonEnv = cluster.PythonEnvTemplate,
            configPath = cluster.ConfigPathTemplate,
            statusCommand = cluster.StatusCommandTemplate,
            stopCommand = cluster.StopCommandTemplate,
            startCommand = cluster.StartCommandTemplate,
        });
        Assert.True(added.StatusCode == HttpStatusCode.Created, await added.Content.ReadAsStringAsync());
        return targetId;
    }
}
