using UpgradeConsole.Web.Runbooks;

namespace UpgradeConsole.Web.BackendAi;

public static class BackendAiSetup
{
    /// <summary>Plugs Backend.AI in: the product, its runtime, the cluster's hosts and their connections.</summary>
    public static WebApplicationBuilder AddBackendAi(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<ClusterConnections>();
        builder.Services.AddScoped<ClusterService>();
        return builder.AddProduct<BackendAiRuntime>(BackendAiProduct.Instance);
    }
}
