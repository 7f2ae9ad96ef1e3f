using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>One captured log line with the values of the scopes it was written in (what JSON logs with IncludeScopes show).</summary>
public sealed record LogEntry(LogLevel Level, string Category, string Message, IReadOnlyDictionary<string, object?> Scope);

/// <summary>Keeps what the application logs, so a test can read it as an admin reads the console.</summary>
public sealed class LogCapture : ILoggerProvider, ISupportExternalScope
{
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly ConcurrentQueue<LogEntry> _entries = new();
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

    public IReadOnlyList<string> Lines => [.. _lines];

    /// <summary>The same lines with their level, category and scope values.</summary>
    public IReadOnlyList<LogEntry> Entries => [.. _entries];

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, this);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

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

    private sealed class Logger(string category, LogCapture capture) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => capture._scopes.Push(state);

        // The setup link is logged at Debug under its own category (off by default); the tests read it there.
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information || category == "UpgradeConsole.SetupLink";

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                var message = formatter(state, exception);
                capture._lines.Enqueue($"{logLevel} {category}: {message}{(exception is null ? "" : " " + exception)}");
                var scope = new Dictionary<string, object?>(StringComparer.Ordinal);
                capture._scopes.ForEachScope((value, values) =>
                {
                    if (value is IEnumerable<KeyValuePair<string, object?>> pairs)
                    {
                        foreach (var (k, v) in pairs)
                        {
                            values[k] = v;
                        }
                    }
                }, scope);
                capture._entries.Enqueue(new LogEntry(logLevel, category, message, scope));
            }
        }
    }
}
