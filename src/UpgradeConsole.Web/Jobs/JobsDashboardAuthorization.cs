using Hangfire.Dashboard;
using Microsoft.AspNetCore.Authorization;
using UpgradeConsole.Web.Accounts;

namespace UpgradeConsole.Web.Jobs;

/// <summary>
/// Who may open Hangfire's dashboard: the dashboard's own signed-in users with the Operate policy (Admins and
/// Operators); Viewers and anonymous callers are refused. The endpoint carries the same policy; this filter
/// is Hangfire's own check (without one it would allow local requests only), through the same policies.
/// </summary>
public sealed class JobsDashboardAuthorization : IDashboardAsyncAuthorizationFilter
{
    public async Task<bool> AuthorizeAsync(DashboardContext context)
    {
        var http = context.GetHttpContext();
        var authorization = http.RequestServices.GetRequiredService<IAuthorizationService>();
        return (await authorization.AuthorizeAsync(http.User, Policies.Operate)).Succeeded;
    }

    /// <summary>Only Admins may act (requeue, delete, trigger); Operators see everything, read-only.</summary>
    public static bool IsReadOnly(DashboardContext context)
    {
        var http = context.GetHttpContext();
        var authorization = http.RequestServices.GetRequiredService<IAuthorizationService>();
        // Hangfire asks synchronously; the policy is a role check on the signed-in user, nothing to wait for.
        return !authorization.AuthorizeAsync(http.User, Policies.Administer).GetAwaiter().GetResult().Succeeded;
    }
}
