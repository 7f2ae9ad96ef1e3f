using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Web.Api;

namespace UpgradeConsole.Web.Cli;

/// <summary>
/// <c>tokens create|list|revoke</c>: personal API tokens made on the server itself, acting on the
/// database like <c>users create</c> (headless bootstrap: no browser needed for the first token).
/// Exit codes: 0 done; 1 refused (no such user or token, a role above the user's); 2 usage;
/// 3 no dashboard database where the configuration points (nothing is created).
/// </summary>
internal static class TokensCommand
{
    public const int Refused = 1;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Build(TextWriter output, TextWriter error)
    {
        var tokens = new Command("tokens", "Personal API tokens, on the server's own database (for the first token of a script or CI job).");

        var user = new Option<string>("--user") { Description = "The e-mail address of the dashboard user the token acts for.", Required = true };
        var name = new Option<string>("--name") { Description = "What the token is for (\"nightly CI\").", Required = true };
        var role = new Option<string>("--role") { Description = "Admin, Operator or Viewer, never more than the user's own role; or Metrics (reads /metrics only, an Admin's).", Required = true };
        role.Validators.Add(r =>
        {
            if (Api.TokenScopes.Normalize(r.GetValueOrDefault<string>()) is null)
            {
                r.AddError($"Unknown role '{r.GetValueOrDefault<string>()}'. Use one of: {string.Join(", ", Roles.All)}, {Api.TokenScopes.Metrics}.");
            }
        });
        var expires = new Option<int?>("--expires") { Description = $"Days until the token expires (1 to {ApiTokenService.MaxExpiryDays}); without it the token does not expire." };
        expires.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is < 1 or > ApiTokenService.MaxExpiryDays)
            {
                r.AddError($"--expires is 1 to {ApiTokenService.MaxExpiryDays} days.");
            }
        });
        var create = new Command("create", "Make a token and print it on standard output, once and alone (it is stored hashed).") { user, name, role, expires };
        create.SetAction((parse, ct) => CommandLine.WithExistingDatabaseAsync(error, async app =>
        {
            await using var scope = app.Services.CreateAsyncScope();
            var service = scope.ServiceProvider.GetRequiredService<ApiTokenService>();
            var result = await service.CreateForUserAsync(parse.GetValue(user)!, parse.GetValue(name), parse.GetValue(role), parse.GetValue(expires), CommandLine.CliActor, ct);
            if (result.Created is not { } made)
            {
                await error.WriteLineAsync(string.Join(" ", result.Errors.SelectMany(e => e.Value)));
                return Refused;
            }

            await output.WriteLineAsync(made.Secret);
            return 0;
        }, ct));
        tokens.Subcommands.Add(create);

        var of = new Option<string?>("--user") { Description = "Only this user's tokens." };
        var json = new Option<bool>("--json") { Description = "Print JSON (never the tokens themselves: only their hashes are stored)." };
        var list = new Command("list", "List tokens: id, prefix, name, owner, role, dates, state.") { of, json };
        list.SetAction((parse, ct) => CommandLine.WithExistingDatabaseAsync(error, async app =>
        {
            await using var scope = app.Services.CreateAsyncScope();
            var all = await scope.ServiceProvider.GetRequiredService<ApiTokenService>().ListForCliAsync(parse.GetValue(of), CommandLine.CliActor, ct);
            var now = app.Services.GetRequiredService<TimeProvider>().GetUtcNow();
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(all.Select(t => new
                {
                    id = t.Id, prefix = t.Prefix, name = t.Name, owner = t.UserEmail, role = t.Role, createdAt = t.CreatedAt,
                    expiresAt = t.ExpiresAt, lastUsedAt = t.LastUsedAt, revokedAt = t.RevokedAt, state = StateOf(t, now),
                }), Indented));
                return 0;
            }

            await output.WriteLineAsync($"{"ID",-5} {"PREFIX",-11} {"ROLE",-9} {"STATE",-8} {"EXPIRES",-11} {"LAST USED",-17} {"OWNER",-28} NAME");
            foreach (var t in all)
            {
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"{t.Id,-5} {t.Prefix,-11} {t.Role,-9} {StateOf(t, now),-8} {t.ExpiresAt?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) ?? "never",-11} {t.LastUsedAt?.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) ?? "never",-17} {t.UserEmail,-28} {t.Name}"));
            }

            return 0;
        }, ct));
        tokens.Subcommands.Add(list);

        var id = new Argument<int>("ID") { Description = "The token's id (first column of `tokens list`)." };
        var revoke = new Command("revoke", "Revoke a token at once: its next call is refused.") { id };
        revoke.SetAction((parse, ct) => CommandLine.WithExistingDatabaseAsync(error, async app =>
        {
            await using var scope = app.Services.CreateAsyncScope();
            var refusal = await scope.ServiceProvider.GetRequiredService<ApiTokenService>().RevokeForCliAsync(parse.GetValue(id), CommandLine.CliActor, ct);
            if (refusal is not null)
            {
                await error.WriteLineAsync(refusal);
                return Refused;
            }

            await output.WriteLineAsync($"Revoked token {parse.GetValue(id)}.");
            return 0;
        }, ct));
        tokens.Subcommands.Add(revoke);
        return tokens;
    }

    private static string StateOf(ApiToken token, DateTimeOffset now) =>
        token.RevokedAt is not null ? "revoked" : token.ExpiresAt <= now ? "expired" : "active";
}
