using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Hosting;

namespace UpgradeConsole.Web.Admin;

/// <summary>
/// The htmx actions of the users page. Each answers with the re-rendered row; a plain form post
/// (no JavaScript) is redirected back to the page instead.
/// </summary>
public static class AdminEndpoints
{
    public static IEndpointRouteBuilder MapAdmin(this IEndpointRouteBuilder app)
    {
        var users = app.MapGroup("/admin/users/{id}")
            .RequireAuthorization(Policies.Administer)
            .RequireAntiforgery();

        users.MapPost("/role", (string id, [FromForm] string role, UserAdministration accounts, HttpContext http, ILogger<UserAdministration> log) =>
            RowAsync(http, accounts, id, "user.role", async () =>
            {
                var r = await accounts.SetRoleAsync(id, role);
                log.LogInformation("{Admin} set the role of user {Id} to {Role}: {Outcome}", http.User.Identity?.Name, id, role, r.Succeeded);
                return (r, $"Role set to {Core.Accounts.Roles.Normalize(role)}.");
            }));
        users.MapPost("/disable", (string id, UserAdministration accounts, HttpContext http) =>
            RowAsync(http, accounts, id, "user.disable", async () => (await accounts.SetDisabledAsync(id, true), "Disabled; their sessions have ended.")));
        users.MapPost("/enable", (string id, UserAdministration accounts, HttpContext http) =>
            RowAsync(http, accounts, id, "user.enable", async () => (await accounts.SetDisabledAsync(id, false), "Enabled.")));
        users.MapPost("/unlock", (string id, UserAdministration accounts, HttpContext http) =>
            RowAsync(http, accounts, id, "user.unlock", async () => (await accounts.UnlockAsync(id), "Unlocked.")));
        users.MapPost("/reset-password", (string id, UserAdministration accounts, HttpContext http) =>
            RowAsync(http, accounts, id, "user.reset-password", async () => (await accounts.ResetPasswordAsync(id, null), "Password reset.")));
        return app;
    }

    private static async Task<IResult> RowAsync(
        HttpContext http, UserAdministration accounts, string id, string auditAction, Func<Task<(AccountResult Result, string Message)>> action)
    {
        if (await accounts.FindAsync(id) is not { } before)
        {
            return TypedResults.NotFound();
        }

        var (result, message) = await action();
        var after = await accounts.FindAsync(id);
        await http.RequestServices.GetRequiredService<AuditLog>().RecordAsync(http.User, auditAction, subject: before.Email, details: new
        {
            result.Succeeded,
            result.Errors,
            before = new { before.Role, before.IsDisabled, locked = before.LockedOutUntil is not null },
            after = after is null ? null : new { after.Role, after.IsDisabled, locked = after.LockedOutUntil is not null },
        });
        if (!http.Request.Headers.ContainsKey("HX-Request"))
        {
            return TypedResults.Redirect("/admin/users");
        }

        var user = await accounts.FindAsync(id);
        return new RazorComponentResult<UserRow>(new Dictionary<string, object?>
        {
            [nameof(UserRow.User)] = user,
            [nameof(UserRow.Message)] = result.Succeeded ? message : null,
            [nameof(UserRow.GeneratedPassword)] = result.GeneratedPassword,
            [nameof(UserRow.Errors)] = result.Errors,
        });
    }
}
