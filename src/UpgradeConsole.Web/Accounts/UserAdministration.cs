using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Accounts;

namespace UpgradeConsole.Web.Accounts;

/// <summary>The result of an account change: either done, or refused with reasons a person can read.</summary>
public sealed record AccountResult(bool Succeeded, IReadOnlyList<string> Errors, string? GeneratedPassword = null)
{
    public static AccountResult Ok(string? generatedPassword = null) => new(true, [], generatedPassword);

    public static AccountResult Fail(params string[] errors) => new(false, errors);

    public static AccountResult From(IdentityResult result) =>
        result.Succeeded ? Ok() : new(false, result.Errors.Select(e => e.Description).ToList());
}

/// <summary>One row of the users page.</summary>
public sealed record UserSummary(
    string Id,
    string Email,
    string Role,
    bool IsDisabled,
    DateTimeOffset? LockedOutUntil,
    DateTimeOffset CreatedAt,
    DateTimeOffset? LastLoginAt);

/// <summary>
/// Creating users and changing their role, status and password. Every entry point (setup page,
/// admin pages, CLI) goes through here, so the rules hold everywhere: one role per user, and the
/// last enabled Admin can be neither demoted nor disabled.
/// </summary>
public sealed class UserAdministration(UserManager<AppUser> users, TimeProvider clock)
{
    public async Task<IReadOnlyList<UserSummary>> ListAsync(CancellationToken ct = default)
    {
        var all = await users.Users.AsNoTracking().OrderBy(u => u.Email).ToListAsync(ct);
        var result = new List<UserSummary>(all.Count);
        foreach (var u in all)
        {
            result.Add(await SummarizeAsync(u));
        }

        return result;
    }

    public async Task<UserSummary?> FindAsync(string id)
    {
        var user = await users.FindByIdAsync(id);
        return user is null ? null : await SummarizeAsync(user);
    }

    /// <summary>Creates a user with one role. With no password given, one is generated and returned.</summary>
    public async Task<AccountResult> CreateAsync(string email, string role, string? password)
    {
        var canonicalRole = Roles.Normalize(role);
        if (canonicalRole is null)
        {
            return AccountResult.Fail($"Unknown role '{role}'. Use one of: {string.Join(", ", Roles.All)}.");
        }

        email = email.Trim();
        if (!new System.ComponentModel.DataAnnotations.EmailAddressAttribute().IsValid(email))
        {
            return AccountResult.Fail($"'{email}' is not an e-mail address.");
        }

        var generated = string.IsNullOrEmpty(password) ? PasswordGenerator.NewPassword() : null;
        var user = new AppUser
        {
            UserName = email,
            Email = email,
            EmailConfirmed = true,
            CreatedAt = clock.GetUtcNow(),
        };
        var created = await users.CreateAsync(user, password ?? generated!);
        if (!created.Succeeded)
        {
            return AccountResult.From(created);
        }

        var assigned = await users.AddToRoleAsync(user, canonicalRole);
        return assigned.Succeeded ? AccountResult.Ok(generated) : AccountResult.From(assigned);
    }

    public async Task<AccountResult> SetRoleAsync(string id, string role)
    {
        var canonicalRole = Roles.Normalize(role);
        if (canonicalRole is null)
        {
            return AccountResult.Fail($"Unknown role '{role}'.");
        }

        var user = await users.FindByIdAsync(id);
        if (user is null)
        {
            return AccountResult.Fail("No such user.");
        }

        var current = await users.GetRolesAsync(user);
        if (current.Count == 1 && current[0] == canonicalRole)
        {
            return AccountResult.Ok();
        }

        if (canonicalRole != Roles.Admin && current.Contains(Roles.Admin) && await IsLastEnabledAdminAsync(user))
        {
            return AccountResult.Fail("This is the last enabled Admin; make someone else Admin first.");
        }

        var removed = await users.RemoveFromRolesAsync(user, current);
        if (!removed.Succeeded)
        {
            return AccountResult.From(removed);
        }

        // Changing the role changes the security stamp, so open sessions pick it up at once.
        return AccountResult.From(await users.AddToRoleAsync(user, canonicalRole));
    }

    public async Task<AccountResult> SetDisabledAsync(string id, bool disabled)
    {
        var user = await users.FindByIdAsync(id);
        if (user is null)
        {
            return AccountResult.Fail("No such user.");
        }

        if (disabled && !user.IsDisabled && await users.IsInRoleAsync(user, Roles.Admin) && await IsLastEnabledAdminAsync(user))
        {
            return AccountResult.Fail("This is the last enabled Admin; it cannot be disabled.");
        }

        user.IsDisabled = disabled;
        var updated = await users.UpdateAsync(user);
        if (!updated.Succeeded)
        {
            return AccountResult.From(updated);
        }

        // A new stamp ends the user's open sessions at their next request.
        return AccountResult.From(await users.UpdateSecurityStampAsync(user));
    }

    /// <summary>Sets a new password (generated when none is given), ends open sessions and clears any lockout.</summary>
    public async Task<AccountResult> ResetPasswordAsync(string id, string? newPassword)
    {
        var user = await users.FindByIdAsync(id);
        if (user is null)
        {
            return AccountResult.Fail("No such user.");
        }

        var generated = string.IsNullOrEmpty(newPassword) ? PasswordGenerator.NewPassword() : null;
        var token = await users.GeneratePasswordResetTokenAsync(user);
        var reset = await users.ResetPasswordAsync(user, token, newPassword ?? generated!);
        if (!reset.Succeeded)
        {
            return AccountResult.From(reset);
        }

        await users.SetLockoutEndDateAsync(user, null);
        await users.ResetAccessFailedCountAsync(user);
        return AccountResult.Ok(generated);
    }

    public async Task<AccountResult> UnlockAsync(string id)
    {
        var user = await users.FindByIdAsync(id);
        if (user is null)
        {
            return AccountResult.Fail("No such user.");
        }

        await users.SetLockoutEndDateAsync(user, null);
        return AccountResult.From(await users.ResetAccessFailedCountAsync(user));
    }

    public async Task<AccountResult> ChangeOwnPasswordAsync(AppUser user, string current, string replacement) =>
        AccountResult.From(await users.ChangePasswordAsync(user, current, replacement));

    private async Task<bool> IsLastEnabledAdminAsync(AppUser user)
    {
        var admins = await users.GetUsersInRoleAsync(Roles.Admin);
        return !admins.Any(a => !a.IsDisabled && a.Id != user.Id);
    }

    private async Task<UserSummary> SummarizeAsync(AppUser u)
    {
        var roles = await users.GetRolesAsync(u);
        var lockedUntil = u.LockoutEnd is { } end && end > clock.GetUtcNow() ? end : (DateTimeOffset?)null;
        return new UserSummary(u.Id, u.Email ?? "", roles.FirstOrDefault() ?? "", u.IsDisabled, lockedUntil, u.CreatedAt, u.LastLoginAt);
    }
}
