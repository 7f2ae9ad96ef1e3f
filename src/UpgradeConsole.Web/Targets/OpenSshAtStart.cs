using System.Globalization;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Targets;

/// <summary>
/// What the System OpenSSH transport needs set right when the dashboard starts, after the migrations and
/// before anything connects:
/// <list type="bullet">
/// <item>the ControlMasters a killed process left under the data directory are ended (a graceful stop
/// ends them itself; a <c>kill -9</c> runs no shutdown);</item>
/// <item>targets of an earlier version that gave the OpenSSH client a stored key (then served by a private
/// ssh-agent, which is gone: ADR 0014) move to SSH.NET, which takes the same key in memory; each move is
/// an audit event, so the admin sees it and can choose a key file instead.</item>
/// </list>
/// </summary>
internal sealed class OpenSshAtStart(DataDirectory data, TargetConnections connections, IServiceScopeFactory scopes, AuditLog audit, ILogger<OpenSshAtStart> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var root = data.Combine("ssh");
        if (Directory.Exists(root))
        {
            foreach (var dir in Directory.EnumerateDirectories(root))
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var id) && File.Exists(Path.Combine(dir, "cm")))
                {
                    await connections.CloseAsync(id);
                    logger.LogInformation("Ended the OpenSSH master a stopped process left for target {TargetId}", id);
                }
            }
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var stale = await db.Targets.AsNoTracking()
            .Where(t => t.Transport == SshTransport.OpenSsh && t.AuthMethod == TargetAuthMethod.StoredKey)
            .Select(t => new { t.Id, t.Name })
            .ToListAsync(cancellationToken);
        foreach (var target in stale)
        {
            // Conditional: of several nodes starting at once, one moves it and writes the event.
            var moved = await db.Targets
                .Where(t => t.Id == target.Id && t.Transport == SshTransport.OpenSsh && t.AuthMethod == TargetAuthMethod.StoredKey)
                .ExecuteUpdateAsync(s => s.SetProperty(t => t.Transport, SshTransport.SshNet), cancellationToken);
            if (moved == 1)
            {
                await audit.RecordAsync("system", "target.transport-switched", target.Id, target.Name,
                    new { from = nameof(SshTransport.OpenSsh), to = nameof(SshTransport.SshNet), reason = TargetService.OpenSshStoredKeyRefusal }, cancellationToken);
                logger.LogWarning("Target {Target} used a stored key with the System OpenSSH client: it now uses SSH.NET (ADR 0014)", target.Name);
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
