namespace UpgradeConsole.Tests.Fixtures;

/// <summary>Polls a condition until it holds or the time is up: waiting for what a person would wait for, never a fixed sleep.</summary>
public static class Eventually
{
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string>? diagnostics = null) =>
        Assert.True(await WithinAsync(condition, timeout), $"still not true after {timeout}\n{diagnostics?.Invoke()}");

    /// <summary>True as soon as the condition holds; false once <paramref name="timeout"/> has passed without it.</summary>
    public static async Task<bool> WithinAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        // The condition is asked again at each tick of one timer until the deadline cancels the wait.
        using var deadline = new CancellationTokenSource(timeout);
        using var ticks = new PeriodicTimer(Poll);
        while (!await condition())
        {
            try
            {
                await ticks.WaitForNextTickAsync(deadline.Token);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                return await condition();
            }
        }

        return true;
    }

    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);
}
