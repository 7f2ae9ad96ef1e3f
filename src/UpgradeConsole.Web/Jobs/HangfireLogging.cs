using Hangfire.AspNetCore;
using Hangfire.Logging;

namespace UpgradeConsole.Web.Jobs;

/// <summary>
/// Hangfire's log goes to the host's logging. Hangfire keeps its log provider in a process-wide static, so
/// where one process hosts several dashboards one after another (the tests) a stopped host's logger factory
/// may still be asked for a logger: that answers with a silent one instead of failing the job.
/// </summary>
internal sealed class HangfireLogging(ILoggerFactory factory) : ILogProvider
{
    private readonly AspNetCoreLogProvider _inner = new(factory);

    public ILog GetLogger(string name)
    {
        try
        {
            return _inner.GetLogger(name);
        }
        catch (ObjectDisposedException)
        {
            return Silent.Instance;
        }
    }

    private sealed class Silent : ILog
    {
        public static readonly Silent Instance = new();

        public bool Log(Hangfire.Logging.LogLevel logLevel, Func<string> messageFunc, Exception? exception = null) => false;
    }
}
