using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>Keeps what the application logs, so a test can read it as an admin reads the console.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyList<string> Lines => [.. _lines];

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    /// <summary>Waits for a line containing <paramref name="text"/> and returns it.</summary>
    public async Task<string> WaitForAsync(string text, TimeSpan? timeout = null)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < (timeout ?? TimeSpan.FromSeconds(20)))
        {
            var line = _lines.FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal));
            if (line is not null)
            {
                return line;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"No log line contains '{text}'. Logged:\n{string.Join('\n', _lines)}");
    }

    private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        // The setup link is logged at Debug under its own category (off by default); the tests read it there.
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information || category == "UpgradeConsole.SetupLink";

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : " " + exception)}");
            }
        }
    }
}
