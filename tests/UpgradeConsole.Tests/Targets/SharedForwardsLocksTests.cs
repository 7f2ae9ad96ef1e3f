using Microsoft.Extensions.Logging.Abstractions;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Targets;

/// <summary>
/// <see cref="SharedForwards"/> locks each target on its own: a forward being opened over a slow link to one target
/// holds up neither another target's nor the release of another's lease; two requests to one target still share one
/// forward. The shells here are stand-ins whose forwards open when the test says so (the real forwards over sshd are
/// covered by <see cref="KeepingTheForwardToATargetsDatabaseTests"/>).
/// </summary>
public sealed class SharedForwardsLocksTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task AForwardStillOpeningToOneTarget_DoesNotHoldUpAnotherTargets()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var forwards = new SharedForwards(TimeProvider.System, NullLogger<SharedForwards>.Instance);
        var slow = new HeldShell();
        var quick = new HeldShell();
        quick.Open();

        var pending = forwards.AcquireAsync(1, Guid.NewGuid(), slow, "db", 5432, ct);
        await slow.Asked.Task.WaitAsync(Bound, ct);

        // Target 2's forward opens and is released while target 1's is still being opened.
        var other = await forwards.AcquireAsync(2, Guid.NewGuid(), quick, "db", 5432, ct).WaitAsync(Bound, ct);
        await other.DisposeAsync().AsTask().WaitAsync(Bound, ct);
        await forwards.CloseAsync(2).WaitAsync(Bound, ct);
        Assert.Equal(1, quick.Disposed);
        Assert.False(pending.IsCompleted);

        slow.Open();
        await using var first = await pending.WaitAsync(Bound, ct);
        Assert.Equal(slow.Port, first.Port);
    }

    [Fact]
    public async Task TwoRequestsToOneTarget_WhileItsForwardOpens_ShareIt()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var forwards = new SharedForwards(TimeProvider.System, NullLogger<SharedForwards>.Instance);
        var shell = new HeldShell();
        var version = Guid.NewGuid();

        var first = forwards.AcquireAsync(7, version, shell, "db", 5432, ct);
        await shell.Asked.Task.WaitAsync(Bound, ct);
        var second = forwards.AcquireAsync(7, version, shell, "db", 5432, ct);
        shell.Open();

        await using var a = await first.WaitAsync(Bound, ct);
        await using var b = await second.WaitAsync(Bound, ct);
        Assert.Equal(1, shell.Forwards);
        Assert.Equal(a.Port, b.Port);
    }

    /// <summary>A shell whose forward opens when <see cref="Open"/> is called; it runs nothing else.</summary>
    private sealed class HeldShell : IRemoteShell
    {
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _forwards;
        private int _disposed;

        public TaskCompletionSource Asked { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Port { get; } = Random.Shared.Next(20_000, 60_000);

        public int Forwards => Volatile.Read(ref _forwards);

        public int Disposed => Volatile.Read(ref _disposed);

        public string Destination => "held@127.0.0.1";

        public void Open() => _open.TrySetResult();

        public async Task<IPortForward> ForwardAsync(string remoteHost, int remotePort, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _forwards);
            Asked.TrySetResult();
            await _open.Task.WaitAsync(cancellationToken);
            return new Forward(this);
        }

        public Task<RemoteResult> RunAsync(string script, CancellationToken cancellationToken, TimeSpan? timeout = null) => throw new NotSupportedException();

        public Task<IRemoteProcess> StartAsync(string script, CancellationToken cancellationToken) => throw new NotSupportedException();

        private sealed class Forward(HeldShell shell) : IReusablePortForward
        {
            public string Host => "127.0.0.1";

            public int Port => shell.Port;

            public bool IsOpen => shell.Disposed == 0;

            public ValueTask DisposeAsync()
            {
                Interlocked.Increment(ref shell._disposed);
                return ValueTask.CompletedTask;
            }
        }
    }
}
