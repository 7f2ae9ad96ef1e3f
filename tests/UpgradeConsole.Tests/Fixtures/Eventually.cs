using System.Diagnostics;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>Polls a condition until it holds or the time is up: waiting for what a person would wait for, never a fixed sleep.</summary>
public static class Eventually
{
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string>? diagnostics = null)
    {
        var waited = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(waited.Elapsed < timeout, $"still not true after {timeout}\n{diagnostics?.Invoke()}");
            await Task.Delay(200);
        }
    }
}
