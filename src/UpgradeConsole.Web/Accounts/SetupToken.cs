using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Accounts;

/// <summary>
/// The one-time token that lets the first person create the first Admin. It exists only while the
/// dashboard has no users, lives in memory (a restart prints a new one) and dies when used.
/// </summary>
public sealed class SetupToken : IDisposable
{
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _useGate = new(1, 1);
    private byte[]? _hash;

    /// <summary>Serializes uses of the token, so two simultaneous requests cannot both create an Admin.</summary>
    public async Task<IDisposable> EnterAsync(CancellationToken ct = default)
    {
        await _useGate.WaitAsync(ct);
        return new Releaser(_useGate);
    }

    private sealed class Releaser(SemaphoreSlim gate) : IDisposable
    {
        public void Dispose() => gate.Release();
    }

    /// <summary>Creates a new token and returns it; any earlier token stops working.</summary>
    public string Issue()
    {
        var token = PasswordGenerator.NewToken();
        lock (_lock)
        {
            _hash = SHA256.HashData(Encoding.UTF8.GetBytes(token));
        }

        return token;
    }

    public bool IsActive
    {
        get
        {
            lock (_lock)
            {
                return _hash is not null;
            }
        }
    }

    /// <summary>True when <paramref name="token"/> is the live token (compared in constant time).</summary>
    public bool Matches(string? token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return false;
        }

        var candidate = SHA256.HashData(Encoding.UTF8.GetBytes(token));
        lock (_lock)
        {
            return _hash is not null && CryptographicOperations.FixedTimeEquals(_hash, candidate);
        }
    }

    public void Dispose() => _useGate.Dispose();

    public void Revoke()
    {
        lock (_lock)
        {
            _hash = null;
        }
    }
}

/// <summary>At start, when no user exists, issues the setup token and prints the link to use it.</summary>
internal sealed class SetupTokenAnnouncer(
    IServiceScopeFactory scopes,
    SetupToken setupToken,
    IServer server,
    IHostApplicationLifetime lifetime,
    ILogger<SetupTokenAnnouncer> logger,
    ILoggerFactory loggers) : IHostedService
{
    /// <summary>
    /// The category the link itself is logged under, at Debug: off unless configured, so that a live
    /// credential never lands in journald or container logs by default (the console print is where to find it).
    /// </summary>
    public const string LinkCategory = "UpgradeConsole.SetupLink";

    private readonly ILogger _linkLogger = loggers.CreateLogger(LinkCategory);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Addresses are known only once the server listens.
        lifetime.ApplicationStarted.Register(() => _ = AnnounceAsync());
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task AnnounceAsync()
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            if (await db.Users.AnyAsync())
            {
                return;
            }

            var token = setupToken.Issue();
            var baseUrl = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
                ?? "http://127.0.0.1:5080";
            var link = $"{baseUrl.TrimEnd('/')}/setup?token={token}";
            // Printed as well as logged: a person starting the dashboard for the first time reads the console.
            await Console.Out.WriteLineAsync($"{Environment.NewLine}UpgradeConsole has no users yet. Create the first Admin here (the link works once):{Environment.NewLine}  {link}{Environment.NewLine}");
            logger.LogWarning("No users yet: the one-time link to create the first Admin is printed on the dashboard's standard output.");
            _linkLogger.LogDebug("Create the first Admin at {SetupLink}", link);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogError(ex, "Could not issue the setup token");
        }
    }
}
