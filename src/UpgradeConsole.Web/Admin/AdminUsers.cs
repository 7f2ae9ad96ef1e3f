using System.Security.Claims;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Audit;

namespace UpgradeConsole.Web.Admin;

/// <summary>
/// What the users page does for an Admin: every call first checks, in the database, that the person
/// acting is an Admin now (their tab may have been open since before a demotion), then changes the user
/// through <see cref="UserAdministration"/> and records the change with before and after. Each call
/// works in a scope of its own: a circuit lives long, and Identity's tracked users in a circuit-wide
/// context would go stale (another request changes the row: "optimistic concurrency failure").
/// </summary>
public sealed class AdminUsers(IServiceScopeFactory scopes, ILogger<AdminUsers> log)
{
    public async Task<IReadOnlyList<UserSummary>> ListAsync(ClaimsPrincipal actor, CancellationToken ct = default)
    {
        await using var scope = scopes.CreateAsyncScope();
        var (accounts, access, _) = Resolve(scope);
        await access.RequireAsync(actor, Roles.Admin);
        return await accounts.ListAsync(ct);
    }

    /// <summary>Creates a user; with no password, one is generated and returned once.</summary>
    public async Task<AccountResult> CreateAsync(ClaimsPrincipal actor, string email, string role, string? password)
    {
        await using var scope = scopes.CreateAsyncScope();
        var (accounts, access, audit) = Resolve(scope);
        await access.RequireAsync(actor, Roles.Admin);
        var result = await accounts.CreateAsync(email, role, string.IsNullOrEmpty(password) ? null : password);
        if (result.Succeeded)
        {
            log.LogInformation("{Admin} created user {Email} with role {Role}", actor.Identity?.Name, email, role);
            await audit.RecordAsync(actor, "user.create", subject: email.Trim(),
                details: new { role = Roles.Normalize(role), passwordGenerated = result.GeneratedPassword is not null });
        }

        return result;
    }

    public Task<AccountResult> SetRoleAsync(ClaimsPrincipal actor, string id, string role) =>
        ChangeAsync(actor, id, "user.role", accounts => accounts.SetRoleAsync(id, role));

    public Task<AccountResult> SetDisabledAsync(ClaimsPrincipal actor, string id, bool disabled) =>
        ChangeAsync(actor, id, disabled ? "user.disable" : "user.enable", accounts => accounts.SetDisabledAsync(id, disabled));

    public Task<AccountResult> UnlockAsync(ClaimsPrincipal actor, string id) =>
        ChangeAsync(actor, id, "user.unlock", accounts => accounts.UnlockAsync(id));

    /// <summary>Gives the user a generated password (returned once); their open sessions end.</summary>
    public Task<AccountResult> ResetPasswordAsync(ClaimsPrincipal actor, string id) =>
        ChangeAsync(actor, id, "user.reset-password", accounts => accounts.ResetPasswordAsync(id, null));

    private static (UserAdministration Accounts, UserAccess Access, AuditLog Audit) Resolve(AsyncServiceScope scope) =>
        (scope.ServiceProvider.GetRequiredService<UserAdministration>(), scope.ServiceProvider.GetRequiredService<UserAccess>(),
            scope.ServiceProvider.GetRequiredService<AuditLog>());

    private async Task<AccountResult> ChangeAsync(ClaimsPrincipal actor, string id, string action, Func<UserAdministration, Task<AccountResult>> change)
    {
        await using var scope = scopes.CreateAsyncScope();
        var (accounts, access, audit) = Resolve(scope);
        await access.RequireAsync(actor, Roles.Admin);
        if (await accounts.FindAsync(id) is not { } before)
        {
            return AccountResult.Fail("No such user.");
        }

        var result = await change(accounts);
        var after = await accounts.FindAsync(id);
        log.LogInformation("{Admin} {Action} on user {Id}: {Outcome}", actor.Identity?.Name, action, id, result.Succeeded);
        await audit.RecordAsync(actor, action, subject: before.Email, details: new
        {
            result.Succeeded,
            result.Errors,
            before = new { before.Role, before.IsDisabled, locked = before.LockedOutUntil is not null },
            after = after is null ? null : new { after.Role, after.IsDisabled, locked = after.LockedOutUntil is not null },
        });
        return result;
    }
}

public static class AdminSetup
{
    public static WebApplicationBuilder AddAdmin(this WebApplicationBuilder builder)
    {
        builder.Services.AddScoped<AdminUsers>();
        return builder;
    }
}
