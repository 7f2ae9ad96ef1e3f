using Hangfire;
using Microsoft.AspNetCore.Identity;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Web.Accounts;

namespace UpgradeConsole.Web.Runs;

/// <summary>
/// The Hangfire scheduled job that starts a planned run at its scheduled time (kept in Hangfire's storage, so it
/// survives restarts). It takes the run and the due time, not objects: a job left behind by a moved or cancelled
/// schedule finds the run waiting for another time (or none) and does nothing.
/// </summary>
public sealed class ScheduledStartJob(RunService runs, UserManager<AppUser> users, ILogger<ScheduledStartJob> logger)
{
    [AutomaticRetry(Attempts = 0)]
    [JobDisplayName("Start run {0} at its scheduled time")]
    public async Task StartAsync(int runId, long dueUnixMilliseconds, CancellationToken ct)
    {
        var result = await runs.StartScheduledAsync(runId, DateTimeOffset.FromUnixTimeMilliseconds(dueUnixMilliseconds), MayOperateAsync, ct);
        if (!result.Succeeded)
        {
            logger.LogWarning("Scheduled start of run {Run}: {Outcome}", runId, result.Error);
        }
    }

    /// <summary>Whoever scheduled the run still holds an account that is enabled and may start runs.</summary>
    private async Task<bool> MayOperateAsync(string name)
    {
        var user = await users.FindByNameAsync(name) ?? await users.FindByEmailAsync(name);
        if (user is null || user.IsDisabled)
        {
            return false;
        }

        var roles = await users.GetRolesAsync(user);
        return roles.Any(r => Roles.Rank(r) >= Roles.Rank(Roles.Operator));
    }
}
