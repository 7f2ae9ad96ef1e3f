using System.Globalization;
using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using UpgradeConsole.Web.Audit;

namespace UpgradeConsole.Web.Api;

/// <summary>Claims a token-authenticated principal carries besides name, id and role.</summary>
public static class TokenClaims
{
    public const string TokenId = "uc:token-id";
    public const string TokenName = "uc:token-name";

    /// <summary>The token a request was made with, or null for a browser session.</summary>
    public static (int Id, string Name)? Of(ClaimsPrincipal? user) =>
        user?.FindFirst(TokenId)?.Value is { } id && int.TryParse(id, CultureInfo.InvariantCulture, out var value)
            ? (value, user.FindFirst(TokenName)?.Value ?? "")
            : null;
}

/// <summary>
/// Refused tokens are audited, but at most <see cref="PerMinute"/> a minute per client address: an
/// address spraying random tokens must not be able to flood the audit history (the rest are logged).
/// </summary>
public sealed class RefusedTokenAudit : IDisposable
{
    public const int PerMinute = 10;

    private readonly System.Threading.RateLimiting.PartitionedRateLimiter<string> _limiter =
        System.Threading.RateLimiting.PartitionedRateLimiter.Create<string, string>(address =>
            System.Threading.RateLimiting.RateLimitPartition.GetFixedWindowLimiter(address, _ => new System.Threading.RateLimiting.FixedWindowRateLimiterOptions
            {
                PermitLimit = PerMinute,
                Window = TimeSpan.FromMinutes(1),
                QueueLimit = 0,
            }));

    public bool ShouldRecord(string address)
    {
        using var lease = _limiter.AttemptAcquire(address);
        return lease.IsAcquired;
    }

    public void Dispose() => _limiter.Dispose();
}

/// <summary>
/// <c>Authorization: Bearer uct_…</c>. Only the API uses this scheme (browser pages use the cookie, the
/// API never does: a token is not sent by the browser on its own, so the API needs no antiforgery).
/// Refusals answer with problem details; refused tokens are audited.
/// </summary>
public sealed class ApiTokenHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder,
    ApiTokenService tokens, AuditLog audit, RefusedTokenAudit throttle) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiToken";

    private string? _refusal;

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? header = Request.Headers.Authorization;
        if (string.IsNullOrEmpty(header))
        {
            return AuthenticateResult.NoResult();
        }

        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            _refusal = "Send the token as 'Authorization: Bearer <token>'.";
            return AuthenticateResult.Fail(_refusal);
        }

        var presented = header["Bearer ".Length..].Trim();
        var check = await tokens.CheckAsync(presented, Context.RequestAborted);
        if (check.Refusal is not null)
        {
            _refusal = $"The token was refused: {check.Refusal}.";
            var prefix = presented.Length >= 10 ? presented[..10] : "(short)";
            var address = Context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
            if (!throttle.ShouldRecord(address))
            {
                Logger.LogWarning("API token refused ({Reason}) from {Address}; more than {Limit} a minute from there, not audited one by one", check.Refusal, address, RefusedTokenAudit.PerMinute);
                return AuthenticateResult.Fail(_refusal);
            }

            await audit.RecordAsync("anonymous", "api.token-refused", subject: check.Token is { } t ? $"token {t.Id} ({t.Name})" : prefix,
                details: new { reason = check.Refusal, token = check.Token?.Id, prefix = check.Token?.Prefix ?? prefix, address, path = Request.Path.Value },
                ct: CancellationToken.None);
            return AuthenticateResult.Fail(_refusal);
        }

        var identity = new ClaimsIdentity(
        [
            new Claim(ClaimTypes.NameIdentifier, check.User!.Id),
            new Claim(ClaimTypes.Name, check.User.UserName ?? check.User.Email ?? ""),
            new Claim(ClaimTypes.Role, check.Role!),
            new Claim(TokenClaims.TokenId, check.Token!.Id.ToString(CultureInfo.InvariantCulture)),
            new Claim(TokenClaims.TokenName, check.Token.Name),
        ], SchemeName, ClaimTypes.Name, ClaimTypes.Role);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer realm=\"UpgradeConsole\"";
        return ApiProblems.WriteAsync(Context, StatusCodes.Status401Unauthorized, "Not signed in",
            _refusal ?? "This API needs a personal API token: create one under your account's API tokens and send 'Authorization: Bearer <token>'.");
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        ApiProblems.WriteAsync(Context, StatusCodes.Status403Forbidden, "Not allowed",
            $"The token's role ({Context.User.FindFirst(ClaimTypes.Role)?.Value}) may not do this. A token's role is the lower of the one it was made with and its owner's.");
}
