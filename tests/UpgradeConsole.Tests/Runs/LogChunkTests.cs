using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Log chunks: slicing gives exactly the lines asked for, the first error is found when a chunk is
/// stored, and the writer cuts chunks where it must (phase change, size, a line with a line break).
/// </summary>
public sealed class LogChunkTests : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();

    public async ValueTask InitializeAsync() => await _app.CreateFirstAdminAsync();

    [Fact]
    public void EverySlice_HoldsExactlyTheLinesAskedFor()
    {
        string[] texts = ["one", "", "three  ", "", "", "six", "seven \u001b[31mred\u001b[0m"];
        var chunk = new LogChunk(41, 47, 2, DateTimeOffset.UnixEpoch, string.Join('\n', texts));
        Assert.Equal(Enumerable.Range(41, 7).Select(i => (long)i), chunk.Lines().Select(l => l.Sequence));
        for (var from = 41; from <= 47; from++)
        {
            for (var to = from; to <= 47; to++)
            {
                var slice = chunk.Slice(from, to);
                Assert.Equal((from, to), ((int)slice.First, (int)slice.Last));
                Assert.Equal(texts[(from - 41)..(to - 40)], slice.Lines().Select(l => l.Text));
                Assert.All(slice.Lines(), l => Assert.Equal(2, l.Phase));
            }
        }

        // Asking for more than the chunk has is clamped to it.
        Assert.Same(chunk, chunk.Slice(1, 1000));
    }

    [Fact]
    public void InJson_AChunkIsAnArrayOfLines_AndReadsBackTheSame()
    {
        var chunk = new LogChunk(7, 9, 3, new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero), "first\n\n\"quoted\" ünïcode ✓\tand a tab");
        var json = System.Text.Json.JsonSerializer.Serialize(new[] { chunk }, System.Text.Json.JsonSerializerOptions.Web);
        Assert.Equal("""[{"first":7,"last":9,"phase":3,"at":"2026-11-22T10:00:00+00:00","lines":["first","","\u0022quoted\u0022 \u00FCn\u00EFcode \u2713\tand a tab"]}]""", json);
        var back = System.Text.Json.JsonSerializer.Deserialize<List<LogChunk>>(json, System.Text.Json.JsonSerializerOptions.Web)!;
        Assert.Equal(chunk, Assert.Single(back));
    }

    [Theory]
    [InlineData("ok\nok\nall good", null)]
    [InlineData("ok\nERROR: no space left\nerror again", 2L)]
    [InlineData("Traceback (most recent call last):", 1L)]
    [InlineData("ok\nok\nthe job FAILED", 3L)]
    [InlineData("ok\nFatal: cannot connect", 2L)]
    [InlineData("ok\nerrors: 0", 2L)]
    public void TheFirstError_IsTheFirstLineWithAnErrorWord_InAnyCase(string text, long? line)
    {
        Assert.Equal(line is null ? null : 99 + line, RunLogWriter.FirstError(text, 100));
    }

    [Fact]
    public async Task TheWriter_CutsChunksAtPhaseChangesAndSize_MasksAcrossTheChunk_AndContinuesNumbering()
    {
        var (runId, phases) = await RunSeed.AddRunningRunAsync(_app.Services, null, ("backup", "Backup", PhaseState.Succeeded), ("pip", "Install", PhaseState.Running));
        var scopes = _app.Services.GetRequiredService<IServiceScopeFactory>();
        var writer = new RunLogWriter(scopes, runId, ["hunter2"], TimeProvider.System);
        await writer.WriteAsync(phases[0], "dumping", 10);
        await writer.WriteAsync(phases[0], "PGPASSWORD=hunter2 pg_dump\nsecond line of the same message", 20);
        for (var i = 1; i <= RunLogHub.MaxBatch + 10; i++)
        {
            await writer.WriteAsync(phases[1], i.ToString(System.Globalization.CultureInfo.InvariantCulture), 100 + i);
        }

        await writer.WriteAsync(phases[1], "ERROR: pip failed");
        await writer.FlushAsync();

        // A second writer (after a restart) continues the numbering.
        var again = new RunLogWriter(scopes, runId, [], TimeProvider.System);
        await again.WriteAsync(phases[1], "continuing after an interruption");
        await again.FlushAsync();

        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var chunks = await db.RunLogChunks.Where(c => c.RunId == runId).OrderBy(c => c.FirstSequence).ToListAsync(TestContext.Current.CancellationToken);
        Assert.Equal(
            [(1L, 3L, 0), (4L, 3L + RunLogHub.MaxBatch, 1), (4L + RunLogHub.MaxBatch, 14L + RunLogHub.MaxBatch, 1), (15L + RunLogHub.MaxBatch, 15L + RunLogHub.MaxBatch, 1)],
            chunks.Select(c => (c.FirstSequence, c.LastSequence, c.PhaseIndex)));
        Assert.Equal("dumping\nPGPASSWORD=•••• pg_dump\nsecond line of the same message", chunks[0].Text);
        Assert.Equal([20L, 100L + RunLogHub.MaxBatch, 100L + RunLogHub.MaxBatch + 10, null], chunks.Select(c => c.RemoteOffset));
        Assert.Equal([null, null, 14L + RunLogHub.MaxBatch, null], chunks.Select(c => c.FirstErrorSequence));
        // The phases' checkpoints moved with the stored chunks.
        var offsets = await db.RunPhases.Where(p => p.RunId == runId).OrderBy(p => p.Index).Select(p => p.LogOffset).ToListAsync(TestContext.Current.CancellationToken);
        Assert.Equal([20L, 100L + RunLogHub.MaxBatch + 10], offsets);

        // Read back across chunk borders, and as text.
        var lines = (await RunLogHub.ChunksAsync(db, runId, 1, 5, RunLogHub.MaxBatch, TestContext.Current.CancellationToken)).SelectMany(c => c.Lines()).ToList();
        Assert.Equal(["PGPASSWORD=•••• pg_dump", "second line of the same message", "1", "2"], lines.Select(l => l.Text));
        Assert.Equal([2L, 3, 4, 5], lines.Select(l => l.Sequence));
        Assert.Equal(15L + RunLogHub.MaxBatch, await RunLogHub.LastSequenceAsync(db, runId, TestContext.Current.CancellationToken));
        var chunked = await RunLogHub.ChunksAsync(db, runId, 1, long.MaxValue, RunLogHub.MaxBatch, TestContext.Current.CancellationToken);
        Assert.Equal(RunLogHub.MaxBatch, chunked.Sum(c => c.Last - c.First + 1));
        Assert.Equal((2L, 1L + RunLogHub.MaxBatch), (chunked[0].First, chunked[^1].Last));

        // Long lines: a chunk is cut by size too, before its text would land on the large object heap.
        var wide = new RunLogWriter(scopes, runId, [], TimeProvider.System);
        for (var i = 0; i < 200; i++)
        {
            await wide.WriteAsync(phases[1], new string((char)('a' + (i % 26)), 999));
        }

        await wide.FlushAsync();
        var wideChunks = await db.RunLogChunks.Where(c => c.RunId == runId && c.FirstSequence > 15 + RunLogHub.MaxBatch).OrderBy(c => c.FirstSequence).ToListAsync(TestContext.Current.CancellationToken);
        Assert.True(wideChunks.Count >= 4, $"{wideChunks.Count} chunks");
        Assert.All(wideChunks, c => Assert.InRange(c.Text.Length * 2, 1, 84_999));
        Assert.Equal(200, wideChunks.Sum(c => c.LastSequence - c.FirstSequence + 1));
    }

    [Fact]
    public async Task WhenTheRunIsCancelled_WhatIsWrittenIsStillStoredByTheLastFlush()
    {
        // The run's token is cancelled (the dashboard stops) while lines are on their way to the database;
        // the driver then flushes with no token, as RunDriver does, and every line is stored.
        var (runId, phases) = await RunSeed.AddRunningRunAsync(_app.Services);
        var writer = new RunLogWriter(_app.Services.GetRequiredService<IServiceScopeFactory>(), runId, [], TimeProvider.System);
        using var stopping = new CancellationTokenSource();
        for (var i = 1; i <= 20_000; i++)
        {
            await writer.WriteAsync(phases[0], $"line {i} {new string('x', 40)}", i * 50L, stopping.Token);
            if (i == 15_000)
            {
                await stopping.CancelAsync();
                try
                {
                    await writer.FlushAsync(stopping.Token);
                }
                catch (OperationCanceledException)
                {
                    // Either way: what matters is the flush that follows.
                }

                break;
            }
        }

        await writer.FlushAsync(CancellationToken.None);
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        Assert.Equal(15_000, await RunLogHub.LastSequenceAsync(db, runId, TestContext.Current.CancellationToken));
        Assert.Equal(15_000 * 50L, await db.RunPhases.Where(p => p.Id == phases[0].Id).Select(p => p.LogOffset).SingleAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task TheFirstError_IsKnownAsTheLogIsWritten_AndAnotherNodeFindsTheSameFromTheChunks()
    {
        var ct = TestContext.Current.CancellationToken;
        var scopes = _app.Services.GetRequiredService<IServiceScopeFactory>();
        var thisNode = _app.Services.GetRequiredService<RunLogFirstErrors>();
        var otherNode = new RunLogFirstErrors();
        var (runId, phases) = await RunSeed.AddRunningRunAsync(_app.Services, null, ("pip-install", "Install", PhaseState.Running));
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();

        // Nothing yet, then a clean log: no error, on either node.
        Assert.Null(await thisNode.FindAsync(db, runId, ct));
        var writer = new RunLogWriter(scopes, runId, [], TimeProvider.System);
        for (var i = 1; i <= 2 * RunLogHub.MaxBatch; i++)
        {
            await writer.WriteAsync(phases[0], $"collecting package {i}");
        }

        await writer.FlushAsync();
        Assert.Null(await thisNode.FindAsync(db, runId, ct));
        Assert.Null(await otherNode.FindAsync(db, runId, ct));

        // An error, then a later one: the first stays the answer. The other node looks only at what is new.
        await writer.WriteAsync(phases[0], "ERROR: could not write the wheel cache");
        var first = 2L * RunLogHub.MaxBatch + 1;
        for (var i = 0; i < 50; i++)
        {
            await writer.WriteAsync(phases[0], i == 25 ? "Traceback (most recent call last):" : $"retrying {i}");
        }

        await writer.FlushAsync();
        Assert.Equal(first, await thisNode.FindAsync(db, runId, ct));
        Assert.Equal(first, await otherNode.FindAsync(db, runId, ct));
        Assert.Equal(first, await new RunLogFirstErrors().FindAsync(db, runId, ct));

        // A writer after a restart, on a node that never looked: what it stores cannot hide the earlier error.
        var restartedNode = new RunLogFirstErrors();
        restartedNode.Stored(runId, first + 50, first + 51, first + 51);
        Assert.Equal(first, await restartedNode.FindAsync(db, runId, ct));
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
