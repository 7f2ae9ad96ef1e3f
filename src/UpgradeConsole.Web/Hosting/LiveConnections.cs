using System.Collections.Concurrent;
using System.Security.Claims;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Api;

namespace UpgradeConsole.Web.Hosting;

/// <summary>
/// Every long-lived connection a person holds open on this node: the live-log hub's connections and the API's event
/// streams. A request is judged once, when it starts; these outlive it. So they are registered here and
/// <see cref="LiveConnectionRevalidator"/> compares each one's principal with the database every
/// <see cref="LiveConnectionOptions.RevalidationInterval"/>: a disabled or deleted account, a new security stamp
/// (password reset, role change), a revoked or expired token or a changed role closes the connection
/// (security finding 7). Also the cap on how many streams one person or token may hold (finding 4).
/// </summary>
public sealed class LiveConnections(IOptions<LiveConnectionOptions> options)
{
    private readonly ConcurrentDictionary<long, Entry> _open = new();
    private long _next;

    public int Count => _open.Count;

    public const string EventStream = "event stream";
    public const string LogHub = "live-log connection";

    /// <summary>
    /// Registers an open connection of <paramref name="principal"/>; <paramref name="close"/> ends it. Null when the
    /// person (or token) already holds as many connections of this kind as <see cref="LiveConnectionOptions"/> allows.
    /// </summary>
    public IDisposable? TryOpen(string kind, ClaimsPrincipal principal, Action close)
    {
        var owner = OwnerOf(principal);
        var max = kind == EventStream ? options.Value.MaxStreamsPerPrincipal : options.Value.MaxHubConnectionsPerPrincipal;
        lock (_open)
        {
            if (_open.Values.Count(e => e.Kind == kind && e.Owner == owner) >= max)
            {
                return null;
            }

            var id = Interlocked.Increment(ref _next);
            _open[id] = new Entry(kind, owner, principal, close);
            return new Registration(this, id);
        }
    }

    /// <summary>"token:ID" for a token's connections (each token its own budget), else "user:ID".</summary>
    public static string OwnerOf(ClaimsPrincipal principal) =>
        TokenClaims.Of(principal) is { } token
            ? $"token:{token.Id}"
            : $"user:{principal.FindFirstValue(ClaimTypes.NameIdentifier) ?? principal.Identity?.Name ?? "anonymous"}";

    internal IReadOnlyList<KeyValuePair<long, Entry>> Snapshot() => [.. _open];

    internal void Close(long id)
    {
        if (_open.TryRemove(id, out var entry))
        {
            entry.Close();
        }
    }

    internal sealed record Entry(string Kind, string Owner, ClaimsPrincipal Principal, Action Close);

    private sealed class Registration(LiveConnections owner, long id) : IDisposable
    {
        public void Dispose() => owner._open.TryRemove(id, out _);
    }
}

public sealed class LiveConnectionOptions
{
    /// <summary>How often open connections are compared with the database (UpgradeConsole:LiveConnections:RevalidationInterval).</summary>
    public TimeSpan RevalidationInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How many API event streams one person or one token may hold open at once (more answer 429).</summary>
    public int MaxStreamsPerPrincipal { get; set; } = 8;

    /// <summary>How many live-log hub connections (one per open run page) one person may hold open at once.</summary>
    public int MaxHubConnectionsPerPrincipal { get; set; } = 32;
}

/// <summary>Closes the live connections whose principal no longer matches the database (see <see cref="LiveConnections"/>).</summary>
public sealed class LiveConnectionRevalidator(
    LiveConnections connections,
    IServiceScopeFactory scopes,
    IOptions<LiveConnectionOptions> options,
    IOptions<IdentityOptions> identity,
    TimeProvider clock,
    ILogger<LiveConnectionRevalidator> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.RevalidationInterval, clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await RevalidateAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Revalidating open live connections failed; trying again at the next interval");
            }
        }
    }

    /// <summary>One pass: every open connection judged against the database, the stale ones closed. Returns how many were closed.</summary>
    public async Task<int> RevalidateAsync(CancellationToken ct)
    {
        var open = connections.Snapshot();
        if (open.Count == 0)
        {
            return 0;
        }

        await using var scope = scopes.CreateAsyncScope();
        var access = scope.ServiceProvider.GetRequiredService<UserAccess>();
        var tokens = scope.ServiceProvider.GetRequiredService<ApiTokenService>();
        var verdicts = new Dictionary<ClaimsPrincipal, bool>(ReferenceEqualityComparer.Instance);
        var closed = 0;
        foreach (var (id, entry) in open)
        {
            if (!verdicts.TryGetValue(entry.Principal, out var current))
            {
                current = TokenClaims.Of(entry.Principal) is { } token
                    ? await tokens.StillValidAsync(token.Id, entry.Principal, ct)
                    : await access.IsCurrentAsync(entry.Principal, identity.Value.ClaimsIdentity.SecurityStampClaimType);
                verdicts[entry.Principal] = current;
            }

            if (!current)
            {
                logger.LogInformation("Closing a {Kind} connection of {Owner} ({Name}): the account, its role or its token changed", entry.Kind, entry.Owner, entry.Principal.Identity?.Name);
                connections.Close(id);
                closed++;
            }
        }

        return closed;
    }
}
