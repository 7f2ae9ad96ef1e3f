using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>Personal API tokens made the way a user makes them: on their account's tokens page.</summary>
public static partial class ApiTokens
{
    /// <summary>Posts the page's form as the signed-in <paramref name="user"/> and returns the token it shows once.</summary>
    public static async Task<string> CreateAsync(HttpClient user, string name, string role, int expiresInDays = 30)
    {
        var response = await user.PostFormAsync("/account/tokens", "create-token", new()
        {
            ["Input.Name"] = name,
            ["Input.Role"] = role,
            ["Input.ExpiresInDays"] = expiresInDays.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        // Post/redirect/get: the page the browser is sent to shows the token, once.
        await response.ExpectRedirectAsync("/account/tokens");
        var html = await (await user.GetAsync("/account/tokens")).ExpectOkAsync();
        var match = SecretPattern().Match(html);
        Assert.True(match.Success, "The tokens page showed no new token:\n" + html);
        return WebUtility.HtmlDecode(match.Groups[1].Value);
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

    [GeneratedRegex("data-testid=\"token-secret\">([^<]+)<")]
    private static partial Regex SecretPattern();
}
