using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Identity;

namespace UpgradeConsole.Web.Accounts;

/// <summary>What a sign-in attempt came to. <see cref="Message"/> is what the form shows.</summary>
public sealed record PasswordSignInOutcome(bool Succeeded, string? Message, string AuditAction, string Reason)
{
    public const string WrongCredentials = "E-mail or password is wrong.";

    public const string Locked =
        "Too many failed sign-ins: this account is locked for 15 minutes on devices it has not signed in from before. " +
        "A device you signed in from before still can; an Admin can unlock it sooner.";

    public const string Disabled = "This account is disabled. Ask an Admin to enable it.";
}

/// <summary>
/// Password sign-in that tells nobody which accounts exist and lets nobody lock an owner out (security finding 11):
/// <list type="bullet">
/// <item>An unknown e-mail gets the same answers, in the same order, as an existing account with a wrong password: "wrong"
/// four times, then "locked" (counted per e-mail in memory), and costs the same password hash.</item>
/// <item>A disabled account says so only to someone who typed its right password.</item>
/// <item>Failed attempts from devices the account never signed in from count toward the account's lock (Identity's lockout,
/// 5 attempts, 15 minutes, shown and lifted on the users page). A device that signed in before carries a
/// data-protected "known device" cookie naming the account; from it the owner signs in past the lock. Its own failures are
/// throttled apart (10 per 15 minutes), so a stolen cookie is no licence to guess.</item>
/// </list>
/// Everything is audited: failures with their reason (unknown accounts included), refusals while locked, successes.
/// </summary>
public sealed class PasswordSignIn(
    UserManager<AppUser> users,
    AppSignInManager signIn,
    IPasswordHasher<AppUser> hasher,
    IDataProtectionProvider protection,
    UnknownAccountThrottle throttle,
    TimeProvider clock,
    IConfiguration configuration)
{
    public const string DeviceCookie = "UpgradeConsole.Device";
    private const int KnownDeviceFailures = 10;
    private static readonly TimeSpan DeviceLifetime = TimeSpan.FromDays(180);
    private static readonly AppUser Nobody = new() { Id = "nobody", UserName = "nobody" };
    private static readonly Lazy<string> NobodyHash = new(() => new PasswordHasher<AppUser>().HashPassword(Nobody, Guid.NewGuid().ToString("N")));

    private IDataProtector Protector => protection.CreateProtector("UpgradeConsole.KnownDevice.v1");

    public async Task<PasswordSignInOutcome> SignInAsync(HttpContext http, string email, string password)
    {
        var user = await users.FindByEmailAsync(email);
        if (user is null)
        {
            // The same hashing work as a real check, and the same sequence of answers as a real account.
            hasher.VerifyHashedPassword(Nobody, NobodyHash.Value, password);
            return throttle.Fail("email:" + email.ToUpperInvariant())
                ? new(false, PasswordSignInOutcome.Locked, "account.login-failed", "no such account, locked")
                : new(false, PasswordSignInOutcome.WrongCredentials, "account.login-failed", "no such account");
        }

        var knownDevice = KnownDevices(http).Contains(user.Id);
        if (knownDevice && throttle.IsThrottled("device:" + user.Id))
        {
            return new(false, PasswordSignInOutcome.Locked, "account.login-throttled", "known device, too many failures");
        }

        if (!knownDevice && await users.IsLockedOutAsync(user))
        {
            // The password is not even checked while locked: guessing on is pointless.
            hasher.VerifyHashedPassword(Nobody, NobodyHash.Value, password);
            return new(false, PasswordSignInOutcome.Locked, "account.login-throttled", "locked");
        }

        if (!await users.CheckPasswordAsync(user, password))
        {
            if (knownDevice)
            {
                return throttle.Fail("device:" + user.Id, KnownDeviceFailures)
                    ? new(false, PasswordSignInOutcome.Locked, "account.login-failed", "bad credentials from a known device, throttled")
                    : new(false, PasswordSignInOutcome.WrongCredentials, "account.login-failed", "bad credentials from a known device");
            }

            await users.AccessFailedAsync(user);
            return await users.IsLockedOutAsync(user)
                ? new(false, PasswordSignInOutcome.Locked, "account.login-failed", "bad credentials, now locked")
                : new(false, PasswordSignInOutcome.WrongCredentials, "account.login-failed", "bad credentials");
        }

        if (!await signIn.CanSignInAsync(user))
        {
            return new(false, PasswordSignInOutcome.Disabled, "account.login-failed", "disabled");
        }

        await signIn.SignInAsync(user, isPersistent: false);
        await users.ResetAccessFailedCountAsync(user);
        throttle.Forget("device:" + user.Id);
        user.LastLoginAt = clock.GetUtcNow();
        await users.UpdateAsync(user);
        RememberDevice(http, user.Id);
        return new(true, null, "account.login", knownDevice ? "known device" : "new device");
    }

    /// <summary>The accounts this browser has signed in to before (an unreadable or foreign cookie counts as none).</summary>
    private string[] KnownDevices(HttpContext http)
    {
        if (http.Request.Cookies[DeviceCookie] is not { Length: > 0 } value)
        {
            return [];
        }

        try
        {
            var known = JsonSerializer.Deserialize<KnownDevice>(Protector.Unprotect(value));
            return known is not null && known.Until > clock.GetUtcNow() ? known.Users : [];
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or JsonException or FormatException)
        {
            return [];
        }
    }

    private void RememberDevice(HttpContext http, string userId)
    {
        var accounts = KnownDevices(http).Where(id => id != userId).Prepend(userId).Take(5).ToArray();
        var until = clock.GetUtcNow() + DeviceLifetime;
        http.Response.Cookies.Append(DeviceCookie, Protector.Protect(JsonSerializer.Serialize(new KnownDevice(accounts, until))), new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Secure = configuration.GetValue("UpgradeConsole:RequireHttps", false) || http.Request.IsHttps,
            Expires = until,
            IsEssential = true,
            Path = "/account",
        });
    }

    private sealed record KnownDevice(string[] Users, DateTimeOffset Until);
}

/// <summary>
/// Failure counters kept in memory for what has no database row: e-mails that belong to no account (so they answer like
/// real ones) and known devices. Per node; a counter lapses 15 minutes after its first failure.
/// </summary>
public sealed class UnknownAccountThrottle(TimeProvider clock)
{
    private const int Limit = 5;
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(15);
    private readonly ConcurrentDictionary<string, (int Count, DateTimeOffset Since)> _failures = new();

    /// <summary>Counts a failure; true when the key has reached its limit (this attempt included).</summary>
    public bool Fail(string key, int limit = Limit)
    {
        var now = clock.GetUtcNow();
        if (_failures.Count > 100_000)
        {
            foreach (var stale in _failures.Where(f => now - f.Value.Since > Window).Select(f => f.Key).ToList())
            {
                _failures.TryRemove(stale, out _);
            }
        }

        var entry = _failures.AddOrUpdate(key, _ => (1, now), (_, e) => now - e.Since > Window ? (1, now) : (e.Count + 1, e.Since));
        return entry.Count >= limit;
    }

    public bool IsThrottled(string key, int limit = 10) =>
        _failures.TryGetValue(key, out var e) && clock.GetUtcNow() - e.Since <= Window && e.Count >= limit;

    public void Forget(string key) => _failures.TryRemove(key, out _);
}
