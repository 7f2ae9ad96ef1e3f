using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Accounts;

namespace UpgradeConsole.Tests.Accounts;

/// <summary>
/// Security finding 11: the sign-in form tells nobody which accounts exist, and nobody can lock an owner out of a correct
/// sign-in from a device they signed in from before. Over HTTP: each client is one browser (its own cookie jar).
/// </summary>
public sealed partial class SignInWithoutEnumerationTests : IAsyncLifetime
{
    // Enough posts a minute for one test from one address; the per-address limit has its own test.
    private readonly UpgradeConsoleApplicationFactory _app = new UpgradeConsoleApplicationFactory().WithSetting("UpgradeConsole:SignInAttemptsPerMinute", "100");
    private string _ownerPassword = "";

    public async ValueTask InitializeAsync()
    {
        var admin = await _app.CreateFirstAdminAsync();
        _ownerPassword = await _app.CreateUserAsync(admin, "owner@example.org", "Operator");
    }

    [Fact]
    public async Task AnUnknownAccount_GetsTheSameAnswers_AsAnExistingOneWithAWrongPassword_AttemptForAttempt()
    {
        var existing = await AnswersAsync(_app.CreateBrowserLikeClient(), "owner@example.org", 7);
        var unknown = await AnswersAsync(_app.CreateBrowserLikeClient(), "nobody-here@example.org", 7);

        Assert.Equal(existing, unknown);
        Assert.Equal(Enumerable.Repeat(PasswordSignInOutcome.WrongCredentials, 4).Concat(Enumerable.Repeat(PasswordSignInOutcome.Locked, 3)), existing);

        // Both are audited, the unknown one with its reason.
        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Actor == "nobody-here@example.org" && e.Action == "account.login-failed" && e.Details.Contains("no such account", StringComparison.Ordinal));
        Assert.Contains(events, e => e.Actor == "owner@example.org" && e.Action == "account.login-throttled");
    }

    [Fact]
    public async Task ADisabledAccount_SaysSoOnlyToSomeoneWhoKnowsItsPassword()
    {
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var users = scope.ServiceProvider.GetRequiredService<UserAdministration>();
            var id = (await users.ListAsync(TestContext.Current.CancellationToken)).Single(u => u.Email == "owner@example.org").Id;
            Assert.True((await users.SetDisabledAsync(id, true)).Succeeded);
        }

        var client = _app.CreateBrowserLikeClient();
        Assert.Equal(PasswordSignInOutcome.WrongCredentials, await AnswerAsync(client, "owner@example.org", "a wrong password"));
        Assert.Equal(PasswordSignInOutcome.Disabled, await AnswerAsync(client, "owner@example.org", _ownerPassword));
    }

    [Fact]
    public async Task SomeoneLockingTheAccount_DoesNotLockTheOwnerOut_OfADeviceTheySignedInFromBefore()
    {
        // The owner signed in from this browser last week, and signed out.
        var ownersLaptop = _app.CreateBrowserLikeClient();
        var first = await PostAsync(ownersLaptop, "owner@example.org", _ownerPassword);
        Assert.Equal(HttpStatusCode.Redirect, first.StatusCode);
        Assert.Contains(first.Headers.GetValues("Set-Cookie"), c => c.StartsWith(PasswordSignIn.DeviceCookie + "=", StringComparison.Ordinal) && c.Contains("httponly", StringComparison.OrdinalIgnoreCase));
        await SignOutAsync(ownersLaptop);

        // Someone else guesses five times from elsewhere: the account is locked for new devices.
        var stranger = _app.CreateBrowserLikeClient();
        Assert.Equal(PasswordSignInOutcome.Locked, (await AnswersAsync(stranger, "owner@example.org", 5))[^1]);
        Assert.Equal(PasswordSignInOutcome.Locked, await AnswerAsync(stranger, "owner@example.org", _ownerPassword));
        Assert.Equal(PasswordSignInOutcome.Locked, await AnswerAsync(_app.CreateBrowserLikeClient(), "owner@example.org", _ownerPassword));

        // The owner's own laptop still signs in with the right password.
        var again = await PostAsync(ownersLaptop, "owner@example.org", _ownerPassword);
        Assert.Equal(HttpStatusCode.Redirect, again.StatusCode);
        await again.ExpectRedirectAsync("/");

        // A forged or foreign device cookie is no key: the stranger copying the cookie's name gets nothing.
        var forger = _app.CreateBrowserLikeClient();
        forger.DefaultRequestHeaders.Add("Cookie", PasswordSignIn.DeviceCookie + "=not-a-protected-value");
        Assert.Equal(PasswordSignInOutcome.Locked, await AnswerAsync(forger, "owner@example.org", _ownerPassword));

        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Actor == "owner@example.org" && e.Action == "account.login" && e.Details.Contains("known device", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AKnownDevice_IsThrottledOnItsOwn_AfterTenWrongPasswords()
    {
        var laptop = _app.CreateBrowserLikeClient();
        Assert.Equal(HttpStatusCode.Redirect, (await PostAsync(laptop, "owner@example.org", _ownerPassword)).StatusCode);
        await SignOutAsync(laptop);

        var answers = await AnswersAsync(laptop, "owner@example.org", 10);
        Assert.Equal(Enumerable.Repeat(PasswordSignInOutcome.WrongCredentials, 9).Append(PasswordSignInOutcome.Locked), answers);
        Assert.Equal(PasswordSignInOutcome.Locked, await AnswerAsync(laptop, "owner@example.org", _ownerPassword));
        // Its failures did not lock the account for everyone else.
        Assert.Equal(HttpStatusCode.Redirect, (await PostAsync(_app.CreateBrowserLikeClient(), "owner@example.org", _ownerPassword)).StatusCode);
    }

    private static async Task<List<string>> AnswersAsync(HttpClient client, string email, int attempts)
    {
        var answers = new List<string>();
        for (var i = 0; i < attempts; i++)
        {
            answers.Add(await AnswerAsync(client, email, $"wrong guess {i}"));
        }

        return answers;
    }

    private static async Task<string> AnswerAsync(HttpClient client, string email, string password)
    {
        var response = await PostAsync(client, email, password);
        var html = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"Expected the form again, got {(int)response.StatusCode}");
        var match = ErrorPattern().Match(html);
        Assert.True(match.Success, "No sign-in error shown:\n" + html);
        return WebUtility.HtmlDecode(match.Groups[1].Value);
    }

    private static Task<HttpResponseMessage> PostAsync(HttpClient client, string email, string password) =>
        client.PostFormAsync("/account/login", "login", new() { ["Input.Email"] = email, ["Input.Password"] = password });

    /// <summary>Signs out as the user menu does; the device cookie stays, as in a browser.</summary>
    private static async Task SignOutAsync(HttpClient client)
    {
        var token = HtmlForms.AntiforgeryToken(await (await client.GetAsync("/account/password")).ExpectOkAsync());
        var response = await client.PostAsync("/account/logout", new FormUrlEncodedContent(new Dictionary<string, string> { ["__RequestVerificationToken"] = token }));
        await response.ExpectRedirectAsync("/account/login");
        Assert.Equal(HttpStatusCode.Redirect, (await client.GetAsync("/")).StatusCode);
    }

    [GeneratedRegex("data-testid=\"login-error\">([^<]*)<")]
    private static partial Regex ErrorPattern();

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
