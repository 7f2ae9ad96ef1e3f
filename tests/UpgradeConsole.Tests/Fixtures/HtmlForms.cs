using System.Net;
using System.Text.RegularExpressions;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>Posting the dashboard's server-rendered forms over HTTP, antiforgery token included.</summary>
public static partial class HtmlForms
{
    /// <summary>Fetches <paramref name="url"/>, takes the antiforgery token it rendered, and posts the named form.</summary>
    public static async Task<HttpResponseMessage> PostFormAsync(this HttpClient client, string url, string? formName, Dictionary<string, string> fields)
    {
        var page = await client.GetAsync(url);
        var html = await page.Content.ReadAsStringAsync();
        Assert.True(page.StatusCode == HttpStatusCode.OK, $"GET {url} answered {(int)page.StatusCode}:\n{html}");
        var token = AntiforgeryToken(html);
        var form = new Dictionary<string, string>(fields) { ["__RequestVerificationToken"] = token };
        if (formName is not null)
        {
            form["_handler"] = formName;
        }

        return await client.PostAsync(url, new FormUrlEncodedContent(form));
    }

    public static string AntiforgeryToken(string html)
    {
        var match = HiddenTokenPattern().Match(html);
        Assert.True(match.Success, "The page has no antiforgery token:\n" + html);
        return WebUtility.HtmlDecode(match.Groups[1].Value);
    }

    public static async Task<string> ExpectOkAsync(this HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK,
            $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri} answered {(int)response.StatusCode}:\n{body}");
        return body;
    }

    public static async Task ExpectRedirectAsync(this HttpResponseMessage response, string location)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode is HttpStatusCode.Redirect or HttpStatusCode.Found or HttpStatusCode.SeeOther,
            $"{response.RequestMessage?.RequestUri} answered {(int)response.StatusCode}, not a redirect to {location}:\n{body}");
        var actual = response.Headers.Location!.IsAbsoluteUri ? response.Headers.Location.PathAndQuery : response.Headers.Location.OriginalString;
        Assert.Equal(location, actual);
    }

    [GeneratedRegex("name=\"__RequestVerificationToken\"[^>]*value=\"([^\"]+)\"")]
    private static partial Regex HiddenTokenPattern();
}
