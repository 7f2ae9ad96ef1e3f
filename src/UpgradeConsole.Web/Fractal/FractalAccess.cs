using System.Globalization;
using Npgsql;
using UpgradeConsole.Core.EnvFiles;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Fractal;

/// <summary>Everything needed to work on a Fractal target's data: its env values and its database.</summary>
/// Disposing it closes the forward to the database: open it for one page request or one phase.
public sealed record FractalContext(Target Target, IRemoteShell Shell, IReadOnlyDictionary<string, string?> Env, FractalDatabase Database, IPortForward? Forward = null) : IProductSession
{
    /// <summary>The place in the target's queue a person's request holds (<see cref="FractalAccess.OpenForPeopleAsync"/>); released with the context.</summary>
    public IDisposable? Slot { get; init; }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Forward is not null)
            {
                await Forward.DisposeAsync();
            }
        }
        finally
        {
            Slot?.Dispose();
        }
    }

    /// <summary>The env file's text as read when the context was opened (discovery need not read it again).</summary>
    public string? EnvText { get; init; }

    /// <summary>Values never to show: the env file's passwords, secrets, keys and tokens.</summary>
    public IReadOnlyCollection<string> Secrets =>
        Env.Where(kv => FractalDiscovery.IsSecret(kv.Key) && kv.Value is { Length: >= 4 }).Select(kv => kv.Value!).Distinct().OrderByDescending(s => s.Length).ToList();

    /// <summary>The 2.16 backend (<c>local</c>, <c>slurm</c>, <c>slurm_ssh</c>) the env file sets.</summary>
    public string Backend => Env.GetValueOrDefault("FRACTAL_RUNNER_BACKEND") ?? "local";
}

/// <summary>
/// Opens a Fractal target's own PostgreSQL: reads <c>POSTGRES_*</c> from the target's env file
/// over SSH, forwards a local port (SSH.NET: kept for a few seconds after its last use, <see cref="SharedForwards"/>) or socket
/// (OpenSSH) to it through the target's connection, and connects. The admin configures nothing more.
/// </summary>
public sealed class FractalAccess(TargetConnections connections, TargetWorkLimiter limiter, IServiceScopeFactory scopes, SharedForwards forwards)
{
    /// <summary>
    /// For people's requests (pages, API, preflight, plan): waits its turn in the target's bounded queue, and gets a smaller
    /// share while a run's phase executes there (<see cref="TargetWorkLimiter"/>); refused with <see cref="TargetBusyException"/>
    /// when the queue is full. Run phases use <see cref="OpenAsync"/> and never wait here.
    /// </summary>
    public async Task<FractalContext> OpenForPeopleAsync(Target target, CancellationToken ct)
    {
        bool runExecuting;
        await using (var scope = scopes.CreateAsyncScope())
        {
            runExecuting = await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.AnyAsync(
                scope.ServiceProvider.GetRequiredService<Persistence.AppDbContext>().Set<Runs.Run>(), r => r.ActiveTargetId == target.Id && (r.State == Runs.RunState.Running || r.State == Runs.RunState.RollingBack), ct);
        }

        var slot = await limiter.EnterAsync(target.Id, target.Name, runExecuting, ct);
        try
        {
            return await OpenAsync(target, ct) with { Slot = slot };
        }
        catch
        {
            slot.Dispose();
            throw;
        }
    }

    public async Task<FractalContext> OpenAsync(Target target, CancellationToken ct)
    {
        var shell = await connections.ShellAsync(target, ct);
        var (text, error) = await FractalDiscovery.ReadEnvFileAsync(shell, TargetService.Location(target), ct);
        if (text is null)
        {
            throw new InvalidOperationException(error);
        }

        var env = DotEnvFile.Parse(text).Values();
        if (string.IsNullOrWhiteSpace(env.GetValueOrDefault("POSTGRES_DB")))
        {
            throw new InvalidOperationException($"{target.EnvFileName} does not set POSTGRES_DB, so the database cannot be found.");
        }

        var host = env.GetValueOrDefault("POSTGRES_HOST") is { Length: > 0 } h ? h : "localhost";
        var port = int.TryParse(env.GetValueOrDefault("POSTGRES_PORT"), NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : 5432;
        // The target's kept forward when it has one (the same local port, so Npgsql's data source and its types are reused).
        var forward = await forwards.AcquireAsync(target.Id, target.Version, shell, host, port, ct);
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = forward.Host,
            Port = forward.Port,
            Database = env["POSTGRES_DB"],
            Username = env.GetValueOrDefault("POSTGRES_USER") is { Length: > 0 } user ? user : "postgres",
            Password = env.GetValueOrDefault("POSTGRES_PASSWORD"),
            Timeout = 15,
            CommandTimeout = 60,
            ApplicationName = "UpgradeConsole",

            // No idle sessions left in the customer's database: a pooled one would block nothing but
            // would be ended by a restore's pg_terminate_backend and break the next query.
            Pooling = false,
        };
        return new FractalContext(target, shell, env, new FractalDatabase(builder.ConnectionString), forward) { EnvText = text };
    }
}
