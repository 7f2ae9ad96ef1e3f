using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Claims;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using UpgradeConsole.Web.Audit;

namespace UpgradeConsole.Web.Api;

/// <summary>How token calls are audited and limited (section UpgradeConsole:Api).</summary>
public sealed class ApiCallOptions
{
    public const string Section = "UpgradeConsole:Api";

    /// <summary>Calls one token may make per minute; more answer 429 with Retry-After.</summary>
    public int CallsPerMinutePerToken { get; set; } = 600;

    /// <summary>Read calls of one token are recorded as one audit event per window (a minute).</summary>
    public TimeSpan ReadAuditWindow { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The most characters of a path, and of a query string, an audit event keeps.</summary>
    public int MaxRecordedChars { get; set; } = 256;
}

/// <summary>
/// The audit history records what tokens do without letting one token flood it (security finding 2): a write (any method
/// but GET and HEAD) is one event each, with the path and a bounded query; reads are counted per token and recorded as one
/// <c>api.reads</c> event per token and window (calls, statuses, the most-read paths). The counts of the window under way
/// are written when it ends or when the dashboard stops; a crash loses at most that window's read counts, never a write.
/// </summary>
public sealed class ApiCallAudit(AuditLog audit, IOptions<ApiCallOptions> options, TimeProvider clock, ILogger<ApiCallAudit> logger)
{
    private const int MaxPathsPerEvent = 10;
    private readonly ConcurrentDictionary<int, ReadWindow> _reads = new();

    public static bool IsRead(string method) => HttpMethods.IsGet(method) || HttpMethods.IsHead(method);

    public async Task RecordAsync(ClaimsPrincipal user, HttpRequest request, int status)
    {
        if (TokenClaims.Of(user) is not { } token)
        {
            return;
        }

        var path = Bounded(request.Path.Value ?? "");
        if (IsRead(request.Method))
        {
            var now = clock.GetUtcNow();
            var window = _reads.GetOrAdd(token.Id, _ => new ReadWindow(user, now));
            lock (window)
            {
                window.Count(path, status);
            }

            return;
        }

        var query = request.QueryString.HasValue ? Bounded(request.QueryString.Value!) : null;
        await audit.RecordAsync(user, "api.call", null, $"{request.Method} {path}",
            new { method = request.Method, path, query, status }, CancellationToken.None);
    }

    /// <summary>Writes the read counts of every window that has ended (all of them with <paramref name="all"/>).</summary>
    public async Task<int> FlushAsync(bool all, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var written = 0;
        foreach (var (tokenId, window) in _reads)
        {
            if (!all && now - window.Since < options.Value.ReadAuditWindow)
            {
                continue;
            }

            if (!_reads.TryRemove(new KeyValuePair<int, ReadWindow>(tokenId, window)))
            {
                continue;
            }

            object details;
            lock (window)
            {
                var top = window.Paths.OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal).Take(MaxPathsPerEvent).ToList();
                details = new
                {
                    from = window.Since,
                    to = now,
                    calls = window.Calls,
                    statuses = window.Statuses.OrderBy(s => s.Key).ToDictionary(s => s.Key.ToString(CultureInfo.InvariantCulture), s => s.Value),
                    paths = top.ToDictionary(p => p.Key, p => p.Value),
                    otherPaths = Math.Max(0, window.Paths.Count - top.Count),
                };
            }

            try
            {
                await audit.RecordAsync(window.User, "api.reads", null, $"{window.Calls} read call(s)", details, ct);
                written++;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Recording the read calls of token {Token} failed", tokenId);
            }
        }

        return written;
    }

    private string Bounded(string value)
    {
        var max = options.Value.MaxRecordedChars;
        return value.Length <= max ? value : string.Create(CultureInfo.InvariantCulture, $"{value[..max]}… ({value.Length - max} more characters)");
    }

    private sealed class ReadWindow(ClaimsPrincipal user, DateTimeOffset since)
    {
        private const int MaxDistinctPaths = 1000;

        public ClaimsPrincipal User { get; } = user;
        public DateTimeOffset Since { get; } = since;
        public long Calls { get; private set; }
        public Dictionary<int, long> Statuses { get; } = [];
        public Dictionary<string, long> Paths { get; } = new(StringComparer.Ordinal);

        public void Count(string path, int status)
        {
            Calls++;
            Statuses[status] = Statuses.GetValueOrDefault(status) + 1;
            if (Paths.Count < MaxDistinctPaths || Paths.ContainsKey(path))
            {
                Paths[path] = Paths.GetValueOrDefault(path) + 1;
            }
        }
    }
}

/// <summary>Writes ended read windows every few seconds, and all of them at shutdown.</summary>
public sealed class ApiCallAuditFlusher(ApiCallAudit calls, IOptions<ApiCallOptions> options, TimeProvider clock) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var tick = TimeSpan.FromTicks(Math.Clamp(options.Value.ReadAuditWindow.Ticks / 4, TimeSpan.FromMilliseconds(250).Ticks, TimeSpan.FromSeconds(10).Ticks));
        using var timer = new PeriodicTimer(tick, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await calls.FlushAsync(all: false, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: the rest is written below.
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await calls.FlushAsync(all: true, cancellationToken);
    }
}

/// <summary>At most <see cref="ApiCallOptions.CallsPerMinutePerToken"/> calls a minute per token (security finding 2).</summary>
public sealed class ApiTokenRateLimit(IOptions<ApiCallOptions> options) : IDisposable
{
    private readonly PartitionedRateLimiter<int> _limiter = PartitionedRateLimiter.Create<int, int>(token =>
        RateLimitPartition.GetFixedWindowLimiter(token, _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = Math.Max(1, options.Value.CallsPerMinutePerToken),
            Window = TimeSpan.FromMinutes(1),
            QueueLimit = 0,
        }));

    /// <summary>Null when the call may go on, else how long to wait.</summary>
    public TimeSpan? Refuse(int tokenId)
    {
        using var lease = _limiter.AttemptAcquire(tokenId);
        if (lease.IsAcquired)
        {
            return null;
        }

        return lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : TimeSpan.FromMinutes(1);
    }

    public void Dispose() => _limiter.Dispose();
}
