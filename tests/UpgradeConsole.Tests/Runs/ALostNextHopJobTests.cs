using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Chains;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// A chain's next-hop job lost between a hop's success and its enqueuing (a node's death, a job deleted under /jobs): the
/// dashboard's recovery job enqueues it again for a hop that succeeded over a minute ago with neither a next run nor a
/// stop reason, and the job then does its work (here: it cannot plan the hop on a target that is no cluster, so it stops
/// the chain with the reason, audited). A hop whose next run exists, and one whose chain already stopped, are left alone.
/// </summary>
public sealed class ALostNextHopJobTests : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();

    public async ValueTask InitializeAsync() => await _app.CreateFirstAdminAsync();

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();

    [Fact]
    public async Task TheRecovery_EnqueuesTheLostJobAgain_AndLeavesHopsWithANextRunOrAStopAlone()
    {
        var ended = TimeProvider.System.GetUtcNow().AddMinutes(-5);
        var lost = await AddFirstHopAsync(ended, stopped: null);
        var alreadyStopped = await AddFirstHopAsync(ended, stopped: "stopped by the test");
        var withNext = await AddFirstHopAsync(ended, stopped: null);
        await AddSecondHopAsync(withNext);

        await using (var scope = _app.Services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<RunJob>().RecoverAsync(TestContext.Current.CancellationToken);
        }

        string? reason = null;
        await Eventually.TrueAsync(async () => (reason = (await RunAsync(lost)).ChainStop) is not null, TimeSpan.FromMinutes(1));
        Assert.Contains("Hop 2 of the chain (23.09.10 → 24.03.0 (major)) could not be planned", reason, StringComparison.Ordinal);
        Assert.Contains(await _app.AuditEventsAsync(), e => e.Action == "run.chain-stop" && e.Subject == $"run {lost}");

        // The other two were not enqueued again: their stop reason is untouched, and no job stopped them.
        Assert.Equal("stopped by the test", (await RunAsync(alreadyStopped)).ChainStop);
        Assert.Null((await RunAsync(withNext)).ChainStop);
        Assert.DoesNotContain(await _app.AuditEventsAsync(), e => e.Action == "run.chain-stop" && e.Subject != $"run {lost}");
    }

    private async Task<Run> RunAsync(int id)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<AppDbContext>().Runs.AsNoTracking().SingleAsync(r => r.Id == id);
    }

    /// <summary>The first hop of a chain on a target of its own (never connected to), succeeded at <paramref name="endedAt"/>.</summary>
    private async Task<int> AddFirstHopAsync(DateTimeOffset endedAt, string? stopped)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var target = new Target { Name = "chain-" + Guid.NewGuid().ToString("N")[..8], Host = "127.0.0.1", SshUser = "nobody", WorkingDirectory = "/opt/backend.ai" };
        db.Targets.Add(target);
        await db.SaveChangesAsync();
        var run = new Run
        {
            TargetId = target.Id,
            RunbookId = "backendai-minor",
            FromVersion = "23.09.9",
            ToVersion = "23.09.10",
            State = RunState.Succeeded,
            PlannedBy = UpgradeConsoleApplicationFactory.AdminEmail,
            PlannedAt = endedAt.AddMinutes(-30),
            StartedBy = UpgradeConsoleApplicationFactory.AdminEmail,
            StartedAt = endedAt.AddMinutes(-20),
            EndedAt = endedAt,
            ChainStop = stopped,
        };
        RunChain.Link(run, ChainLink.First(RunChainTests.TwoHops));
        db.Runs.Add(run);
        await db.SaveChangesAsync();
        return run.Id;
    }

    /// <summary>The second hop's run of <paramref name="firstRunId"/>'s chain, as the job would have created it.</summary>
    private async Task AddSecondHopAsync(int firstRunId)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var first = await db.Runs.AsNoTracking().SingleAsync(r => r.Id == firstRunId);
        var run = new Run
        {
            TargetId = first.TargetId,
            RunbookId = "backendai-major",
            FromVersion = "23.09.10",
            ToVersion = "24.03.0",
            State = RunState.Succeeded,
            PlannedBy = UpgradeConsoleApplicationFactory.AdminEmail,
            PlannedAt = first.EndedAt!.Value,
            EndedAt = first.EndedAt!.Value.AddMinutes(1),
        };
        RunChain.Link(run, new ChainLink(first.ChainId!, 2, RunChain.Hops(first), first.Id));
        db.Runs.Add(run);
        await db.SaveChangesAsync();
    }
}
