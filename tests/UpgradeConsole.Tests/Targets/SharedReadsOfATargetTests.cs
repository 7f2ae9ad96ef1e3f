using Microsoft.Extensions.Options;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Targets;

/// <summary>
/// <see cref="TargetReads"/>: one read shared while it runs and for a short time after; a caller that shows what it
/// gets (a page) may take an older result at once while one read in the background replaces it, and is told when.
/// </summary>
public sealed class SharedReadsOfATargetTests
{
    private readonly ManualClock _clock = new();
    private readonly TargetReads _reads;
    private readonly List<(int Target, string What)> _refreshed = [];
    private int _calls;

    public SharedReadsOfATargetTests()
    {
        _reads = new TargetReads(Options.Create(new TargetWorkOptions { ReadCacheFor = TimeSpan.FromSeconds(3) }), _clock);
        _reads.Refreshed += (target, what) =>
        {
            lock (_refreshed)
            {
                _refreshed.Add((target, what));
            }
        };
    }

    private static readonly TimeSpan UpToAMinute = TimeSpan.FromMinutes(1);

    /// <summary>A read that answers <paramref name="label"/> (else "read N", N counting the reads begun) once <paramref name="gate"/> (if any) opens.</summary>
    private Func<CancellationToken, Task<string>> Read(TaskCompletionSource? gate = null, string? label = null) => async _ =>
    {
        var n = Interlocked.Increment(ref _calls);
        if (gate is not null)
        {
            await gate.Task;
        }

        return label ?? $"read {n}";
    };

    [Fact]
    public async Task WithinItsTime_OneReadAnswersEveryone_WithOrWithoutAnOlderAnswerAllowed()
    {
        var ct = TestContext.Current.CancellationToken;
        Assert.Equal("read 1", await _reads.SharedAsync(7, "users", Read(), ct));
        _clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal("read 1", await _reads.SharedAsync(7, "users", Read(), ct));
        Assert.Equal("read 1", await _reads.SharedAsync(7, "users", Read(), ct, UpToAMinute));
        Assert.Equal(1, _calls);
        Assert.Empty(_refreshed);
    }

    [Fact]
    public async Task PastItsTime_APageGetsTheOlderResultAtOnce_OneReadReplacesIt_AndThePageIsTold()
    {
        var ct = TestContext.Current.CancellationToken;
        await FirstReadAgedAsync(TimeSpan.FromSeconds(10), ct);

        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var refreshed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _reads.Refreshed += (_, _) => refreshed.TrySetResult();

        // Answered while the new read is held: the older result, twice, with one read under way for both.
        Assert.Equal("read 1", await _reads.SharedAsync(7, "users", Read(gate), ct, UpToAMinute));
        Assert.Equal("read 1", await _reads.SharedAsync(7, "users", Read(gate), ct, UpToAMinute));
        Assert.False(refreshed.Task.IsCompleted);

        gate.SetResult();
        await refreshed.Task.WaitAsync(TimeSpan.FromSeconds(10), ct);
        Assert.Equal([(7, "users")], _refreshed);
        Assert.Equal(2, _calls);
        // In place now, and within its time for everyone.
        Assert.Equal("read 2", await _reads.SharedAsync(7, "users", Read(), ct));
        Assert.Equal(2, _calls);
    }

    [Theory]
    [InlineData(10, null)] // past its time, and the caller takes no older result (the API, the CLI, preflight)
    [InlineData(120, 60)] // older than the page takes
    public async Task PastWhatTheCallerTakes_TheCallerWaitsForANewRead(int ageSeconds, int? takesUpToSeconds)
    {
        var ct = TestContext.Current.CancellationToken;
        await FirstReadAgedAsync(TimeSpan.FromSeconds(ageSeconds), ct);
        TimeSpan? takes = takesUpToSeconds is { } up ? TimeSpan.FromSeconds(up) : null;
        Assert.Equal("read 2", await _reads.SharedAsync(7, "users", Read(), ct, takes));
        Assert.Empty(_refreshed);
    }

    [Fact]
    public async Task AChangeThroughTheDashboardDuringTheBackgroundRead_KeepsThatReadOut_AndNobodyIsTold()
    {
        var ct = TestContext.Current.CancellationToken;
        await FirstReadAgedAsync(TimeSpan.FromSeconds(10), ct);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var before = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        Func<CancellationToken, Task<string>> heldRead = async token =>
        {
            var result = await Read(gate, "begun before the fix")(token);
            _ = Task.Run(() => before.TrySetResult(result), CancellationToken.None);
            return result;
        };
        Assert.Equal("read 1", await _reads.SharedAsync(7, "users", heldRead, ct, UpToAMinute));

        // The fix lands while the background read (begun before it) is under way: the next caller reads afresh,
        // and the older background read, once done, is not put in place of the newer one.
        _reads.Forget(7);
        Assert.Equal("after the fix", await _reads.SharedAsync(7, "users", Read(label: "after the fix"), ct));
        gate.SetResult();
        Assert.Equal("begun before the fix", await before.Task.WaitAsync(TimeSpan.FromSeconds(10), ct));
        Assert.Equal("after the fix", await _reads.SharedAsync(7, "users", Read(), ct));
        Assert.Equal("after the fix", await _reads.SharedAsync(7, "users", Read(), ct, UpToAMinute));
        Assert.Empty(_refreshed);
    }

    [Fact]
    public async Task AFailedBackgroundRead_LeavesTheOlderResult_AndTheNextPageAskTriesAgain()
    {
        var ct = TestContext.Current.CancellationToken;
        await FirstReadAgedAsync(TimeSpan.FromSeconds(10), ct);
        var failed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Func<CancellationToken, Task<string>> failing = async _ =>
        {
            Interlocked.Increment(ref _calls);
            await Task.Yield();
            failed.TrySetResult();
            throw new TimeoutException("the target did not answer");
        };

        Assert.Equal("read 1", await _reads.SharedAsync(7, "users", failing, ct, UpToAMinute));
        await failed.Task.WaitAsync(TimeSpan.FromSeconds(10), ct);
        await Eventually.TrueAsync(async () => await _reads.SharedAsync(7, "users", Read(label: "after the failure"), ct, UpToAMinute) == "after the failure", TimeSpan.FromSeconds(10));
        Assert.Single(_refreshed);
    }

    /// <summary>A first read ("read 1"), then the clock moved on by <paramref name="age"/>.</summary>
    private async Task FirstReadAgedAsync(TimeSpan age, CancellationToken ct)
    {
        Assert.Equal("read 1", await _reads.SharedAsync(7, "users", Read(), ct));
        _clock.Advance(age);
    }

    private sealed class ManualClock : TimeProvider
    {
        private DateTimeOffset _now = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}
