using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Api;

/// <summary>A token just made: <see cref="Secret"/> is shown once and never stored.</summary>
public sealed record CreatedToken(ApiToken Token, string Secret);

public sealed record TokenResult(bool Succeeded, IReadOnlyDictionary<string, string[]> Errors, CreatedToken? Created = null)
{
    public static TokenResult Fail(string field, string error) => new(false, new Dictionary<string, string[]> { [field] = [error] });
}

/// <summary>Who a presented token acts for, or why it is refused.</summary>
public sealed record TokenCheck(ApiToken? Token, AppUser? User, string? Role, string? Refusal);

/// <summary>
/// Personal API tokens: made by their owner, stored hashed, capped by the owner's role, revocable. The role
/// that caps a new token, shows everyone's tokens and lets one revoke another's is the one held now, in the
/// database (<see cref="UserAccess"/>): the tokens page is an open tab that may outlive a demotion.
/// </summary>
public sealed class ApiTokenService(AppDbContext db, UserManager<AppUser> users, AuditLog audit, TimeProvider clock, UserAccess access)
{
    /// <summary>Every token starts with this, so a leaked one is easy to recognise (and to scan for).</summary>
    public const string Marker = "uct_";

    public const int MaxExpiryDays = 366;

    public async Task<TokenResult> CreateAsync(ClaimsPrincipal owner, string? name, string? role, int? expiresInDays, CancellationToken ct)
    {
        var user = await users.GetUserAsync(owner);
        var ownerRole = await access.CurrentRoleAsync(owner);
        if (user is null || ownerRole is null)
        {
            return TokenResult.Fail("user", "Your account is no longer active. Sign in again.");
        }

        return await CreateForAsync(user, ownerRole, name, role, expiresInDays, details => audit.RecordAsync(owner, "token.create", subject: details.Subject, details: details.Fields, ct: ct), ct, self: true);
    }

    /// <summary>
    /// A token for the user with <paramref name="email"/>, made from the server's own command line (headless
    /// bootstrap): capped by the user's role in the database, audited as made by <paramref name="actor"/>.
    /// </summary>
    public async Task<TokenResult> CreateForUserAsync(string email, string? name, string? role, int? expiresInDays, string actor, CancellationToken ct)
    {
        var user = await users.FindByEmailAsync(email.Trim());
        if (user is null)
        {
            return TokenResult.Fail("user", $"No dashboard user with the e-mail address '{email.Trim()}' (create one with `users create`).");
        }

        if (user.IsDisabled)
        {
            return TokenResult.Fail("user", $"{user.Email} is disabled: a token would be refused.");
        }

        var ownerRole = (await users.GetRolesAsync(user)).OrderByDescending(Roles.Rank).FirstOrDefault();
        return await CreateForAsync(user, ownerRole, name, role, expiresInDays,
            details => audit.RecordAsync(actor, "token.create", subject: details.Subject, details: details.Fields, ct: ct), ct);
    }

    private sealed record CreatedDetails(string Subject, object Fields);

    private async Task<TokenResult> CreateForAsync(AppUser user, string? ownerRole, string? name, string? role, int? expiresInDays, Func<CreatedDetails, Task> record, CancellationToken ct, bool self = false)
    {
        var wanted = TokenScopes.Normalize(role);
        if (string.IsNullOrWhiteSpace(name) || name.Trim().Length > 100 || name.Any(char.IsControl))
        {
            return TokenResult.Fail("name", "Name the token (up to 100 characters), e.g. after the job that uses it.");
        }

        if (wanted is null)
        {
            return TokenResult.Fail("role", $"Choose one of: {string.Join(", ", Roles.All)}, or {TokenScopes.Metrics} (reads /metrics only).");
        }

        if (wanted == TokenScopes.Metrics && ownerRole != Roles.Admin)
        {
            return TokenResult.Fail("role", $"Only an Admin may make a {TokenScopes.Metrics} token: {(ownerRole is null ? "the owner has no role" : self ? $"you are {ownerRole}" : $"the owner is {ownerRole}")}.");
        }

        if (wanted != TokenScopes.Metrics && Roles.Rank(wanted) > Roles.Rank(ownerRole))
        {
            return TokenResult.Fail("role", $"A token cannot do more than its owner: {(ownerRole is null ? "the owner has no role" : self ? $"you are {ownerRole}" : $"the owner is {ownerRole}")}.");
        }

        if (expiresInDays is < 1 or > MaxExpiryDays)
        {
            return TokenResult.Fail("expiresInDays", $"Expiry is 1 to {MaxExpiryDays} days, or none.");
        }

        var secret = Marker + PasswordGenerator.NewToken(24);
        var now = clock.GetUtcNow();
        var token = new ApiToken
        {
            UserId = user.Id,
            UserEmail = user.Email ?? user.UserName ?? "",
            Name = name.Trim(),
            Role = wanted,
            Prefix = secret[..(Marker.Length + 6)],
            Hash = HashOf(secret),
            CreatedAt = now,
            ExpiresAt = expiresInDays is { } days ? now.AddDays(days) : null,
        };
        db.ApiTokens.Add(token);
        await db.SaveChangesAsync(ct);
        await record(new CreatedDetails($"token {token.Id} ({token.Name})",
            new { token = token.Id, token.Name, token.Role, token.Prefix, owner = token.UserEmail, expires = token.ExpiresAt }));
        return new TokenResult(true, new Dictionary<string, string[]>(), new CreatedToken(token, secret));
    }

    /// <summary>The owner's tokens; an Admin sees everyone's.</summary>
    public async Task<List<ApiToken>> ListAsync(ClaimsPrincipal viewer, CancellationToken ct)
    {
        var query = db.ApiTokens.AsNoTracking();
        var role = await access.CurrentRoleAsync(viewer);
        if (role is null)
        {
            return [];
        }

        if (role != Roles.Admin)
        {
            var id = users.GetUserId(viewer);
            query = query.Where(t => t.UserId == id);
        }

        var list = await query.ToListAsync(ct);
        return [.. list.OrderBy(t => t.RevokedAt is not null).ThenByDescending(t => t.CreatedAt)];
    }

    /// <summary>Revokes a token at once (its next call gets 401). The owner or an Admin may.</summary>
    public async Task<string?> RevokeAsync(int id, ClaimsPrincipal actor, CancellationToken ct)
    {
        var token = await db.ApiTokens.FirstOrDefaultAsync(t => t.Id == id, ct);
        var role = await access.CurrentRoleAsync(actor);
        if (token is null || role is null || (token.UserId != users.GetUserId(actor) && role != Roles.Admin))
        {
            return "No such token.";
        }

        if (token.RevokedAt is not null)
        {
            return "The token is revoked already.";
        }

        token.RevokedAt = clock.GetUtcNow();
        token.RevokedBy = actor.Identity?.Name;
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(actor, "token.revoke", subject: $"token {token.Id} ({token.Name})",
            details: new { token = token.Id, token.Name, token.Prefix, owner = token.UserEmail }, ct: ct);
        return null;
    }

    /// <summary>Every token (or one user's), for the server's command line; the listing is audited as made by <paramref name="actor"/>.</summary>
    public async Task<List<ApiToken>> ListForCliAsync(string? email, string actor, CancellationToken ct)
    {
        var query = db.ApiTokens.AsNoTracking();
        if (!string.IsNullOrWhiteSpace(email))
        {
            var wanted = email.Trim().ToUpperInvariant();
            var ids = db.Users.Where(u => u.NormalizedEmail == wanted).Select(u => u.Id);
            query = query.Where(t => ids.Contains(t.UserId));
        }

        var list = await query.ToListAsync(ct);
        await audit.RecordAsync(actor, "token.list", subject: string.IsNullOrWhiteSpace(email) ? "all tokens" : $"tokens of {email.Trim()}",
            details: new { count = list.Count }, ct: ct);
        return [.. list.OrderBy(t => t.RevokedAt is not null).ThenByDescending(t => t.CreatedAt).ThenByDescending(t => t.Id)];
    }

    /// <summary>Revokes any token from the server's command line (the person at the server's shell owns the database anyway).</summary>
    public async Task<string?> RevokeForCliAsync(int id, string actor, CancellationToken ct)
    {
        var token = await db.ApiTokens.FirstOrDefaultAsync(t => t.Id == id, ct);
        if (token is null)
        {
            return $"No token with id {id} (see `tokens list`).";
        }

        if (token.RevokedAt is not null)
        {
            return $"Token {id} is revoked already.";
        }

        token.RevokedAt = clock.GetUtcNow();
        token.RevokedBy = actor;
        await db.SaveChangesAsync(ct);
        await audit.RecordAsync(actor, "token.revoke", subject: $"token {token.Id} ({token.Name})",
            details: new { token = token.Id, token.Name, token.Prefix, owner = token.UserEmail }, ct: ct);
        return null;
    }

    /// <summary>Checks a presented token: known, not revoked, not expired, its owner enabled; the role is the lower of the token's and the owner's.</summary>
    public async Task<TokenCheck> CheckAsync(string presented, CancellationToken ct)
    {
        if (!presented.StartsWith(Marker, StringComparison.Ordinal) || presented.Length > 200)
        {
            return new TokenCheck(null, null, null, "not an UpgradeConsole token");
        }

        var hash = HashOf(presented);
        var token = await db.ApiTokens.FirstOrDefaultAsync(t => t.Hash == hash, ct);
        var now = clock.GetUtcNow();
        if (token is null)
        {
            return new TokenCheck(null, null, null, "unknown token");
        }

        if (token.RevokedAt is not null)
        {
            return new TokenCheck(token, null, null, "revoked token");
        }

        if (token.ExpiresAt <= now)
        {
            return new TokenCheck(token, null, null, "expired token");
        }

        var user = await users.FindByIdAsync(token.UserId);
        // (Not lockout: failed password guesses against the owner must not stop their scripts.)
        if (user is null || user.IsDisabled)
        {
            return new TokenCheck(token, user, null, "the token's owner is disabled");
        }

        var ownerRank = (await users.GetRolesAsync(user)).Select(Roles.Rank).DefaultIfEmpty(0).Max();
        string role;
        if (token.Role == TokenScopes.Metrics)
        {
            if (ownerRank < Roles.Rank(Roles.Admin))
            {
                return new TokenCheck(token, user, null, "a metrics token's owner must be an Admin");
            }

            role = TokenScopes.Metrics;
        }
        else
        {
            var rank = Math.Min(ownerRank, Roles.Rank(token.Role));
            if (rank == 0)
            {
                return new TokenCheck(token, user, null, "the token's owner has no role");
            }

            role = Roles.All.First(r => Roles.Rank(r) == rank);
        }

        // Last use, at most once a minute: a busy script should not write a row per call.
        if (token.LastUsedAt is null || now - token.LastUsedAt > TimeSpan.FromMinutes(1))
        {
            token.LastUsedAt = now;
            await db.SaveChangesAsync(ct);
        }

        return new TokenCheck(token, user, role, null);
    }

    /// <summary>
    /// Whether a connection opened with token <paramref name="tokenId"/> may stay open: the token is neither revoked nor expired,
    /// its owner is enabled, and the role it acts with is still the one <paramref name="principal"/> carries.
    /// </summary>
    public async Task<bool> StillValidAsync(int tokenId, ClaimsPrincipal principal, CancellationToken ct)
    {
        var token = await db.ApiTokens.AsNoTracking().FirstOrDefaultAsync(t => t.Id == tokenId, ct);
        if (token is null || token.RevokedAt is not null || token.ExpiresAt <= clock.GetUtcNow())
        {
            return false;
        }

        var user = await users.FindByIdAsync(token.UserId);
        if (user is null || user.IsDisabled)
        {
            return false;
        }

        var ownerRank = (await users.GetRolesAsync(user)).Select(Roles.Rank).DefaultIfEmpty(0).Max();
        if (token.Role == TokenScopes.Metrics)
        {
            return ownerRank >= Roles.Rank(Roles.Admin) && principal.IsInRole(TokenScopes.Metrics);
        }

        var rank = Math.Min(ownerRank, Roles.Rank(token.Role));
        return rank > 0 && principal.IsInRole(Roles.All.First(r => Roles.Rank(r) == rank));
    }

    public static string HashOf(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
}
