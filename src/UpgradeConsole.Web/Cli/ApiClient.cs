using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace UpgradeConsole.Web.Cli;

/// <summary>An API call that did not succeed, with the problem details the server sent.</summary>
internal sealed class ApiCallException(HttpStatusCode status, string message) : Exception(message)
{
    public HttpStatusCode Status { get; } = status;
}

/// <summary>
/// The CLI's thin client of <c>/api/v1</c>: the base address and the token come from
/// UPGRADECONSOLE_URL and UPGRADECONSOLE_TOKEN. Refusals become <see cref="ApiCallException"/>
/// with the server's own sentence and per-field errors.
/// </summary>
internal sealed class ApiClient : IDisposable
{
    private readonly HttpClient _http;

    private ApiClient(HttpClient http) => _http = http;

    public Uri BaseAddress => _http.BaseAddress!;

    /// <summary>The client, or a sentence saying which variable is missing.</summary>
    public static (ApiClient? Client, string? Error) FromEnvironment(Func<string, string?> env)
    {
        var url = env("UPGRADECONSOLE_URL");
        var token = env("UPGRADECONSOLE_TOKEN");
        if (string.IsNullOrWhiteSpace(url) || !Uri.TryCreate(url.TrimEnd('/') + "/", UriKind.Absolute, out var address) || address.Scheme is not ("http" or "https"))
        {
            return (null, "Set UPGRADECONSOLE_URL to the dashboard's address, e.g. https://upgrades.example.org");
        }

        if (string.IsNullOrWhiteSpace(token))
        {
            return (null, "Set UPGRADECONSOLE_TOKEN to a personal API token (made under your account's API tokens page).");
        }

        var http = new HttpClient { BaseAddress = address, Timeout = Timeout.InfiniteTimeSpan };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token.Trim());
        http.DefaultRequestHeaders.UserAgent.ParseAdd("UpgradeConsole-CLI/1");
        return (new ApiClient(http), null);
    }

    public async Task<JsonNode> GetAsync(string path, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/v1/" + path);
        return await SendAsync(request, ct);
    }

    public async Task<JsonNode> PostAsync(string path, object? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/" + path) { Content = JsonContent.Create(body ?? new { }) };
        return await SendAsync(request, ct);
    }

    public async Task<JsonNode> PatchAsync(string path, object body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Patch, "api/v1/" + path) { Content = JsonContent.Create(body) };
        return await SendAsync(request, ct);
    }

    public async Task DeleteAsync(string path, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, "api/v1/" + path);
        await SendAsync(request, ct);
    }

    private async Task<JsonNode> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // Preflight reads the target over SSH; nothing else should take this long.
        cts.CancelAfter(TimeSpan.FromMinutes(10));
        using var response = await _http.SendAsync(request, cts.Token);
        var text = await response.Content.ReadAsStringAsync(cts.Token);
        if (!response.IsSuccessStatusCode)
        {
            throw new ApiCallException(response.StatusCode, Describe(response.StatusCode, text));
        }

        return text.Length == 0 ? new JsonObject() : JsonNode.Parse(text) ?? new JsonObject();
    }

    /// <summary>A text resource and the X-Last-Sequence it came with.</summary>
    public async Task<(string Body, long LastSequence)> GetTextAsync(string path, CancellationToken ct)
    {
        using var response = await _http.GetAsync("api/v1/" + path, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode)
        {
            throw new ApiCallException(response.StatusCode, Describe(response.StatusCode, text));
        }

        var last = response.Headers.TryGetValues("X-Last-Sequence", out var values) && long.TryParse(values.First(), System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : 0;
        return (text, last);
    }

    /// <summary>Follows a run's log as Server-Sent Events; reconnects with Last-Event-ID after a broken connection.</summary>
    public async Task FollowAsync(int runId, long after, Func<string, string, Task> onEvent, CancellationToken ct)
    {
        var last = after;
        var failures = 0;
        while (true)
        {
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"api/v1/runs/{runId}/log/stream");
                request.Headers.Accept.ParseAdd("text/event-stream");
                if (last > 0)
                {
                    request.Headers.Add("Last-Event-ID", last.ToString(System.Globalization.CultureInfo.InvariantCulture));
                }

                using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
                if (!response.IsSuccessStatusCode)
                {
                    throw new ApiCallException(response.StatusCode, Describe(response.StatusCode, await response.Content.ReadAsStringAsync(ct)));
                }

                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct), Encoding.UTF8);
                string? id = null, name = null;
                var data = new StringBuilder();
                while (await reader.ReadLineAsync(ct) is { } line)
                {
                    if (line.Length == 0)
                    {
                        if (name is not null || data.Length > 0)
                        {
                            if (id is not null && long.TryParse(id, System.Globalization.CultureInfo.InvariantCulture, out var seq))
                            {
                                last = seq;
                            }

                            await onEvent(name ?? "message", data.ToString());
                            if (name == "end")
                            {
                                return;
                            }

                            failures = 0;
                        }

                        (id, name) = (null, null);
                        data.Clear();
                    }
                    else if (line.StartsWith(':'))
                    {
                        continue;
                    }
                    else
                    {
                        var colon = line.IndexOf(':', StringComparison.Ordinal);
                        var field = colon < 0 ? line : line[..colon];
                        var value = colon < 0 ? "" : line[(colon + 1)..].TrimStart(' ');
                        switch (field)
                        {
                            case "id": id = value; break;
                            case "event": name = value; break;
                            case "data": data.Append(data.Length > 0 ? "\n" : "").Append(value); break;
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException && !ct.IsCancellationRequested && ++failures <= 30)
            {
                // Dashboard restarting, proxy timeout: pick up after the last line we have.
            }

            await Task.Delay(TimeSpan.FromSeconds(Math.Min(10, 1 + failures)), ct);
        }
    }

    private static string Describe(HttpStatusCode status, string body)
    {
        var text = new StringBuilder();
        try
        {
            var problem = JsonNode.Parse(body);
            text.Append(problem?["title"]?.GetValue<string>() ?? status.ToString());
            if (problem?["detail"]?.GetValue<string>() is { } detail)
            {
                text.Append(": ").Append(detail);
            }

            if (problem?["errors"] is JsonObject errors)
            {
                foreach (var (field, messages) in errors)
                {
                    foreach (var message in messages?.AsArray() ?? [])
                    {
                        // One line: a script's log shows the whole refusal.
                        text.Append(" [").Append(field).Append(": ").Append(message?.GetValue<string>()).Append(']');
                    }
                }
            }
        }
        catch (JsonException)
        {
            text.Append((int)status).Append(' ').Append(status);
        }

        return text.Append(" (HTTP ").Append((int)status).Append(')').ToString();
    }

    public void Dispose() => _http.Dispose();
}
