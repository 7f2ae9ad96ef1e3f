using System.Diagnostics;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>Polls a condition until it holds or the time is up: waiting for what a person would wait for, never a fixed sleep.</summary>
public static class Eventually
{
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string>? diagnostics = null) =>
        Assert.True(await WithinAsync(condition, timeout), $"still not true after {timeout}\n{diagnostics?.Invoke()}");

    /// <summary>True as soon as the condition holds; false once <paramref name="timeout"/> has passed without it.</summary>
    public static async Task<bool> WithinAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var waited = Stopwatch.StartNew();
        while (!await condition())
        {
            var left = timeout - waited.Elapsed;
            if (left <= TimeSpan.Zero)
            {
                return false;
            }

            await Task.Delay(left < Poll ? left : Poll);
        }

        return true;
    }

    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);
}
