using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Accounts;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A dashboard over Kestrel with a Backend.AI target for a cluster on the real double (venvs of its own, so upgrades
/// can run) at a given version, its hosts pasted and pinned through the API, and the Admin signed in in Chromium.
/// </summary>
public sealed class BackendAiInTheBrowser : IAsyncDisposable
{
    private BackendAiInTheBrowser()
    {
    }

    public UpgradeConsoleApplicationFactory App { get; } = new();

    public BackendAiCluster Cluster { get; private set; } = default!;

    public BrowserSession Browser { get; private set; } = default!;

    public int TargetId { get; private set; }

    public static async Task<BackendAiInTheBrowser> StartAsync(Chromium chromium, PostgresServer postgres, int agents, string version)
    {
        var rig = new BackendAiInTheBrowser();
        try
        {
            rig.App.ServeOverKestrel();
            await rig.App.CreateFirstAdminAsync();
            rig.Cluster = await BackendAiCluster.CreateAsync(postgres, agents: agents, version: version, ownVenvs: true);
            var token = await ApiTokens.CreateAsync(rig.App, UpgradeConsoleApplicationFactory.AdminEmail, "setup", Roles.Admin);
            using (var api = ApiTokens.Client(rig.App.BaseUrl, token))
            {
                rig.TargetId = await BackendAiTarget.AddAsync(rig.App, api, rig.Cluster);
            }

            rig.Browser = await chromium.NewSessionAsync(rig.App.BaseUrl);
            await SigningInTests.SignInAsync(rig.Browser.Page, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
            return rig;
        }
        catch
        {
            await rig.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        await App.DisposeAsync();
        if (Cluster is not null)
        {
            await Cluster.DisposeAsync();
        }
    }
}
