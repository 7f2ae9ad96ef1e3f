using System.Net.Http.Headers;
using UpgradeConsole.Web.Api;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>Personal API tokens made the way the tokens page makes them: through its service, as the owner.</summary>
public static class ApiTokens
{
    /// <summary>
    /// Makes a token as <paramref name="email"/> (the tokens page's service, with its role cap and audit event)
    /// and returns the secret the page shows once. ApiTokensTests makes one on the page itself, in the browser.
    /// </summary>
    public static async Task<string> CreateAsync(UpgradeConsoleApplicationFactory app, string email, string name, string role, int expiresInDays = 30)
    {
        ArgumentNullException.ThrowIfNull(app);
        var result = await app.AsAsync<ApiTokenService, TokenResult>(email, (tokens, owner) => tokens.CreateAsync(owner, name, role, expiresInDays, CancellationToken.None));
        Assert.True(result.Succeeded, "Making the token failed: " + string.Join("; ", result.Errors.SelectMany(e => e.Value)));
        return result.Created!.Secret;
    }

    /// <summary>A client of the API with <paramref name="token"/> (or none).</summary>
    public static HttpClient Client(string baseUrl, string? token)
    {
        var client = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromMinutes(5) };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return client;
    }
}
