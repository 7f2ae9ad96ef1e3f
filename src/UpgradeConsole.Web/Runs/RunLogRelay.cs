using System.Globalization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using Npgsql;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Runs;

/// <summary>
/// Several dashboard nodes on one PostgreSQL: the node that stores a batch of log lines announces it
/// in the same transaction (<c>pg_notify('uc_run_log', 'node:run:from:to')</c>, delivered on commit);
/// every other node reads those lines from the database and pushes them to its own viewers. Viewers
/// drop what they have and fetch gaps, so a missed notification delays lines but never loses them.
/// </summary>
/// <summary>This dashboard process among the nodes sharing a database.</summary>
public sealed class DashboardNode
{
    public string Id { get; } = Guid.NewGuid().ToString("N")[..12];

    /// <summary>Host, process and <see cref="Id"/>: names the node on a phase's claim and as a Hangfire server.</summary>
    public string Name => field ??= string.Create(CultureInfo.InvariantCulture, $"{Environment.MachineName}:{Environment.ProcessId}:{Id}");
}

public sealed class RunLogRelay(
    DashboardNode node,
    IOptions<DatabaseOptions> options,
    IServiceScopeFactory scopes,
    IHubContext<RunLogHub, IRunLogClient> hub,
    ILogger<RunLogRelay> logger) : BackgroundService
{
    public const string Channel = "uc_run_log";

    public static string Payload(DashboardNode node, int runId, long from, long to) =>
        string.Create(CultureInfo.InvariantCulture, $"{node.Id}:{runId}:{from}:{to}");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Value.Provider != DatabaseProvider.PostgreSQL)
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var builder = new NpgsqlConnectionStringBuilder(options.Value.ConnectionString) { KeepAlive = 30 };
                await using var connection = new NpgsqlConnection(builder.ConnectionString);
                await connection.OpenAsync(stoppingToken);
                connection.Notification += (_, e) => _ = RelayAsync(e.Payload, stoppingToken);
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }

                logger.LogInformation("Relaying run log announcements of other nodes (this node: {Node})", node.Id);
                while (!stoppingToken.IsCancellationRequested)
                {
                    await connection.WaitAsync(stoppingToken);
                }
            }
            catch (Exception ex) when (ex is NpgsqlException or System.Net.Sockets.SocketException or InvalidOperationException)
            {
                logger.LogWarning(ex, "The run log relay lost its connection; listening again in 5 s");
                await Task.Delay(TimeSpan.FromSeconds(5), stoppingToken);
            }
        }
    }

    private async Task RelayAsync(string payload, CancellationToken ct)
    {
        try
        {
            var parts = payload.Split(':');
            if (parts.Length != 4 || parts[0] == node.Id)
            {
                return;
            }

            var runId = int.Parse(parts[1], CultureInfo.InvariantCulture);
            var from = long.Parse(parts[2], CultureInfo.InvariantCulture);
            var to = long.Parse(parts[3], CultureInfo.InvariantCulture);
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var chunks = await RunLogHub.ChunksAsync(db, runId, from - 1, to, long.MaxValue, ct);
            if (chunks.Count > 0)
            {
                scope.ServiceProvider.GetService<RunActivity>()?.Pulse(runId);
                await hub.Clients.Group(RunLogHub.Group(runId)).Chunks(runId, chunks);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Relaying {Payload} failed; viewers will fetch the lines", payload);
        }
    }
}
