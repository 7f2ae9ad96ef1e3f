using System.Net;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

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
        int runId;
        RunPhase phase;
        await using (var scope = _nodeA.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var target = new Target { Name = "two-nodes", Host = "127.0.0.1", SshUser = "nobody", WorkingDirectory = "/srv/fractal" };
            db.Targets.Add(target);
            await db.SaveChangesAsync();
            var run = new Run
            {
                TargetId = target.Id,
                RunbookId = UpgradeConsole.Core.Runbooks.Runbooks.FractalRelease,
                FromVersion = "2.16.6",
                ToVersion = "2.16.7",
                State = RunState.Running,
                PlannedBy = "test",
                Phases = [new RunPhase { Index = 0, Key = "pip-install", Title = "Install", State = PhaseState.Running }],
            };
            db.Runs.Add(run);
            await db.SaveChangesAsync();
            (runId, phase) = (run.Id, run.Phases[0]);
        }

        var cookies = new CookieContainer();
        using (var client = new HttpClient(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false }) { BaseAddress = new Uri(_nodeB.BaseUrl) })
        {
            var login = await client.PostFormAsync("/account/login", "login", new()
            {
                ["Input.Email"] = UpgradeConsoleApplicationFactory.AdminEmail,
                ["Input.Password"] = UpgradeConsoleApplicationFactory.AdminPassword,
            });
            await login.ExpectRedirectAsync("/");
        }

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
