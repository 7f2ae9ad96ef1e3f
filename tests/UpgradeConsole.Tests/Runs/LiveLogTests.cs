using System.Net;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// The live log over SignalR: lines stored by the run's log writer (masked) reach viewers; a viewer
/// cut mid-stream that comes back with its last sequence ends with every line exactly once; a late
/// joiner gets exactly what it lacks; no login, no log.
/// </summary>
public sealed class LiveLogTests : IAsyncLifetime
{
    private const int Total = 20_000;
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private int _runId;
    private RunPhase _phase = default!;
    private HttpClient _admin = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
        (_runId, var phases) = await RunSeed.AddRunningRunAsync(_app.Services);
        _phase = phases[0];
    }

    [Fact]
    public async Task AViewerCutMidStream_ResumesWithEveryLineExactlyOnce_AndSecretsAreMasked()
    {
        var viewerCookies = await SignInAsync(await _app.CreateUserAsync(_admin, "viewer@example.org", "Viewer"), "viewer@example.org");
        var steady = await RunLogFollower.StartAsync(_app.BaseUrl, viewerCookies, _runId);
        var cut = await RunLogFollower.StartAsync(_app.BaseUrl, viewerCookies, _runId);

        // The run writes lines in batches while both watch; one line carries the database password.
        var writer = new RunLogWriter(_app.Services.GetRequiredService<IServiceScopeFactory>(), _runId, ["s3cret-db-password"], TimeProvider.System);
        var writing = Task.Run(async () =>
        {
            for (var i = 1; i <= Total; i++)
            {
                await writer.WriteAsync(_phase, i == 500 ? "PGPASSWORD=s3cret-db-password pg_dump" : $"line {i}", i * 10L);
                if (i % 700 == 0)
                {
                    await writer.FlushAsync();
                    await Task.Delay(20);
                }
            }

            await writer.FlushAsync();
        });

        // Cut the second viewer mid-stream; it comes back with what it has.
        await cut.WaitForAsync(3000, TimeSpan.FromSeconds(60));
        var kept = cut.Handover();
        await cut.CutAsync();
        await Task.Delay(300);
        await using var resumed = await RunLogFollower.StartAsync(_app.BaseUrl, viewerCookies, _runId, kept);

        await writing;
        await steady.WaitForAsync(Total, TimeSpan.FromSeconds(60));
        await resumed.WaitForAsync(Total, TimeSpan.FromSeconds(60));
        foreach (var follower in new[] { steady, resumed })
        {
            var lines = follower.Lines;
            Assert.Equal(Enumerable.Range(1, Total).Select(i => (long)i), lines.Select(l => l.Sequence));
            Assert.Equal("PGPASSWORD=•••• pg_dump", lines[499].Text);
            Assert.Equal("line 20000", lines[^1].Text);
            Assert.DoesNotContain(lines, l => l.Text.Contains("s3cret", StringComparison.Ordinal));
        }

        Assert.True(steady.PushedBatches > 5, $"only {steady.PushedBatches} pushed batches: the lines came by fetch, not live");
        await steady.DisposeAsync();
    }

    [Fact]
    public async Task JoiningWithALastSequence_ReturnsExactlyTheLinesAfterIt()
    {
        var writer = new RunLogWriter(_app.Services.GetRequiredService<IServiceScopeFactory>(), _runId, [], TimeProvider.System);
        for (var i = 1; i <= 1200; i++)
        {
            await writer.WriteAsync(_phase, $"line {i}");
        }

        await writer.FlushAsync();
        var cookies = await SignInAsync(UpgradeConsoleApplicationFactory.AdminPassword, UpgradeConsoleApplicationFactory.AdminEmail);
        await using var connection = new HubClient();
        await connection.StartAsync(_app.BaseUrl, RunLogHub.Path, cookies);
        var after = (await connection.InvokeAsync<List<LogChunk>>(nameof(RunLogHub.Join), _runId, 1000L)).SelectMany(c => c.Lines()).ToList();
        Assert.Equal(Enumerable.Range(1001, 200).Select(i => (long)i), after.Select(l => l.Sequence));
        Assert.Equal("line 1001", after[0].Text);
        var none = await connection.InvokeAsync<List<LogChunk>>(nameof(RunLogHub.Fetch), _runId, 1200L);
        Assert.Empty(none);
        var missingRun = await Assert.ThrowsAsync<InvalidOperationException>(() => connection.InvokeAsync<List<LogChunk>>(nameof(RunLogHub.Join), _runId + 1000, 0L));
        Assert.Contains("no run", missingRun.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AViewerThatStopsReading_DoesNotHoldUpTheRunsLog_NorTheOtherViewers()
    {
        const int lines = 200_000;
        var cookies = await SignInAsync(UpgradeConsoleApplicationFactory.AdminPassword, UpgradeConsoleApplicationFactory.AdminEmail);
        // A viewer whose connection stops being read (a frozen tab, a dead network): its buffers fill up.
        using var frozen = new ManualResetEventSlim();
        await using var stalled = new HubClient();
        stalled.On(nameof(IRunLogClient.Chunks), _ => frozen.Wait());
        await stalled.StartAsync(_app.BaseUrl, RunLogHub.Path, cookies);
        await stalled.InvokeAsync<List<LogChunk>>(nameof(RunLogHub.Join), _runId, 0L);
        await using var healthy = await RunLogFollower.StartAsync(_app.BaseUrl, cookies, _runId);
        healthy.KeepLines = false;

        var writer = new RunLogWriter(_app.Services.GetRequiredService<IServiceScopeFactory>(), _runId, [], TimeProvider.System);
        var writing = Task.Run(async () =>
        {
            for (var i = 1; i <= lines; i++)
            {
                await writer.WriteAsync(_phase, $"line {i} {new string('x', 120)}");
            }

            await writer.FlushAsync();
        });
        // Far more than any socket buffer holds: a writer waiting for the frozen viewer would never finish.
        var finished = await Task.WhenAny(writing, Task.Delay(TimeSpan.FromMinutes(2))) == writing;
        frozen.Set();
        Assert.True(finished, "the log writer waited for a viewer that does not read");
        await writing;
        await healthy.WaitForAsync(lines, TimeSpan.FromMinutes(2));
        Assert.Equal(lines, healthy.Accepted);
        // Thawed, the slow viewer is still connected and fetches what it missed.
        var missed = (await stalled.InvokeAsync<List<LogChunk>>(nameof(RunLogHub.Fetch), _runId, lines - 10L)).SelectMany(c => c.Lines()).ToList();
        Assert.Equal(Enumerable.Range(lines - 9, 10).Select(i => (long)i), missed.Select(l => l.Sequence));
        Assert.StartsWith($"line {lines - 9} ", missed[0].Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutSignIn_TheHubRefusesTheConnection()
    {
        await using var anonymous = new HubClient();
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => anonymous.StartAsync(_app.BaseUrl, RunLogHub.Path, null));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }

    private Task<CookieContainer> SignInAsync(string password, string email) => RunSeed.SignInCookiesAsync(_app.BaseUrl, email, password);

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
