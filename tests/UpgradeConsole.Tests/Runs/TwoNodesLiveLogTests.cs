using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Two dashboard instances on one PostgreSQL database: a run's lines stored on node A reach a viewer
/// connected to node B live (LISTEN/NOTIFY announces each batch; B reads it and pushes it).
/// </summary>
public sealed class TwoNodesLiveLogTests(PostgresServer postgres) : IAsyncLifetime
{
    private UpgradeConsoleApplicationFactory _nodeA = default!;
    private UpgradeConsoleApplicationFactory _nodeB = default!;

    public async ValueTask InitializeAsync()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        _nodeA = new UpgradeConsoleApplicationFactory(DatabaseProvider.PostgreSQL, connectionString);
        _nodeA.ServeOverKestrel();
        await _nodeA.CreateFirstAdminAsync();
        _nodeB = new UpgradeConsoleApplicationFactory(DatabaseProvider.PostgreSQL, connectionString);
        _nodeB.ServeOverKestrel();
    }

    [Fact]
    public async Task LinesWrittenOnNodeA_ReachAViewerOnNodeB_Live()
    {
        var (runId, phases) = await RunSeed.AddRunningRunAsync(_nodeA.Services);
        var phase = phases[0];
        var cookies = await RunSeed.SignInCookiesAsync(_nodeB.BaseUrl, UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);

        await using var viewerOnB = await RunLogFollower.StartAsync(_nodeB.BaseUrl, cookies, runId);
        var writerOnA = new RunLogWriter(_nodeA.Services.GetRequiredService<IServiceScopeFactory>(), runId, [], TimeProvider.System);
        for (var i = 1; i <= 5000; i++)
        {
            await writerOnA.WriteAsync(phase, $"line {i} from node A");
            if (i % 250 == 0)
            {
                await writerOnA.FlushAsync();
                await Task.Delay(30);
            }
        }

        await writerOnA.FlushAsync();
        await viewerOnB.WaitForAsync(5000, TimeSpan.FromSeconds(60));
        Assert.Equal(Enumerable.Range(1, 5000).Select(i => (long)i), viewerOnB.Lines.Select(l => l.Sequence));
        // Node B has no writer: every pushed batch came through the relay.
        Assert.True(viewerOnB.PushedBatches >= 10, $"{viewerOnB.PushedBatches} batches pushed by node B");
    }

    public async ValueTask DisposeAsync()
    {
        await _nodeB.DisposeAsync();
        await _nodeA.DisposeAsync();
    }
}
