using System.Net;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Cli;

/// <summary>
/// Headless bootstrap: on the server's shell, `users create` then `tokens create` give a script its first
/// token without a browser; `tokens list|revoke` manage them. The CLI runs as a real process on the same
/// data directory as a real dashboard.
/// </summary>
public sealed class BootstrappingATokenFromTheServerShellTests : IAsyncLifetime
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("uc-tokens-").FullName;

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    [Fact]
    public async Task TokensCreate_PrintsOnlyTheToken_WhichTheApiAccepts_UntilTokensRevoke()
    {
        await CliAsync(["users", "create", "--email", "ci@example.org", "--role", "Operator"]);

        var created = await CliAsync(["tokens", "create", "--user", "ci@example.org", "--name", "nightly CI", "--role", "operator", "--expires", "30"]);
        // `TOKEN=$(… tokens create …)`: standard output is the token and a newline, nothing else.
        Assert.Matches("^uct_[A-Za-z0-9_-]{20,}\n$", created.StandardOutput);
        Assert.Equal("", created.StandardError);
        var token = created.StandardOutput.Trim();

        await using var app = new UpgradeConsoleApplicationFactory(dataDirectory: _dataDirectory);
        app.ServeOverKestrel();
        using var api = ApiTokens.Client(app.BaseUrl, token);
        using (var targets = await api.GetAsync("/api/v1/targets", TestContext.Current.CancellationToken))
        {
            Assert.True(targets.StatusCode == HttpStatusCode.OK, await targets.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        }

        // Never more than the user's own role.
        var above = await CliAsync(["tokens", "create", "--user", "ci@example.org", "--name", "too much", "--role", "Admin"], check: false);
        Assert.Equal(1, above.ExitCode);
        Assert.Equal("A token cannot do more than its owner: the owner is Operator.", above.StandardError.Trim());
        Assert.Equal("", above.StandardOutput);

        var list = await CliAsync(["tokens", "list"]);
        var row = list.StandardOutput.Split('\n').Single(l => l.Contains("nightly CI", StringComparison.Ordinal));
        Assert.Contains(token[..10], row, StringComparison.Ordinal);
        Assert.Contains("active", row, StringComparison.Ordinal);
        Assert.Contains("ci@example.org", row, StringComparison.Ordinal);
        Assert.DoesNotContain(token, list.StandardOutput, StringComparison.Ordinal);
        var id = row.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];

        var revoked = await CliAsync(["tokens", "revoke", id]);
        Assert.Equal($"Revoked token {id}.", revoked.StandardOutput.Trim());
        using (var refused = await api.GetAsync("/api/v1/targets", TestContext.Current.CancellationToken))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        var again = await CliAsync(["tokens", "revoke", id], check: false);
        Assert.Equal(1, again.ExitCode);
        Assert.Equal($"Token {id} is revoked already.", again.StandardError.Trim());
        Assert.Contains("revoked", (await CliAsync(["tokens", "list", "--user", "ci@example.org"])).StandardOutput, StringComparison.Ordinal);

        // Each is in the audit history, made by the server's shell, and the token itself never is.
        var events = await app.AuditEventsAsync();
        foreach (var action in new[] { "token.create", "token.list", "token.revoke" })
        {
            Assert.Contains(events, e => e.Action == action && e.Actor.StartsWith("cli (", StringComparison.Ordinal));
        }

        Assert.Contains(events, e => e.Action == "token.create" && e.Details.Contains("ci@example.org", StringComparison.Ordinal) && e.Details.Contains(token[..10], StringComparison.Ordinal));
        Assert.DoesNotContain(events, e => e.Details.Contains(token, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(2, "Unknown role 'Root'", "--role", "Root")]
    [InlineData(2, "--expires is 1 to 366 days", "--expires", "0")]
    [InlineData(1, "No dashboard user with the e-mail address 'nobody@example.org'", "--user", "nobody@example.org")]
    public async Task TokensCreate_WithAWrongArgument_SaysSoWithItsExitCode(int exitCode, string message, string option, string value)
    {
        await CliAsync(["users", "create", "--email", "ci@example.org", "--role", "Viewer"]);
        var args = new Dictionary<string, string> { ["--user"] = "ci@example.org", ["--name"] = "ci", ["--role"] = "Viewer", [option] = value };
        var result = await CliAsync(["tokens", "create", .. args.SelectMany(a => new[] { a.Key, a.Value })], check: false);
        Assert.Equal(exitCode, result.ExitCode);
        Assert.StartsWith(message, result.StandardError, StringComparison.Ordinal);
        Assert.Equal("", result.StandardOutput);
    }

    [Theory]
    [InlineData("create", "--user", "a@example.org", "--name", "n", "--role", "Viewer")]
    [InlineData("list")]
    [InlineData("revoke", "1")]
    public async Task Tokens_OnAMissingDatabase_AreRefusedWithExitCode3_AndCreateNothing(params string[] args)
    {
        var wrong = Path.Combine(_dataDirectory, "typo");
        var result = await CliAsync(["tokens", .. args], new() { ["UpgradeConsole__DataDirectory"] = wrong }, check: false);
        Assert.Equal(3, result.ExitCode);
        Assert.StartsWith("No dashboard database at ", result.StandardError, StringComparison.Ordinal);
        Assert.False(Directory.Exists(wrong));
    }

    private Task<ProcessRunner.Result> CliAsync(string[] args, Dictionary<string, string?>? environment = null, bool check = true)
    {
        var env = new Dictionary<string, string?>
        {
            ["UpgradeConsole__DataDirectory"] = _dataDirectory,
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
        };
        foreach (var (k, v) in environment ?? [])
        {
            env[k] = v;
        }

        return ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args],
            environment: env, workingDirectory: AppContext.BaseDirectory, check: check);
    }

    public ValueTask DisposeAsync()
    {
        Directory.Delete(_dataDirectory, recursive: true);
        return ValueTask.CompletedTask;
    }
}
