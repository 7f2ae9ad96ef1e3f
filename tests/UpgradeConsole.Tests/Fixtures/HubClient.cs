using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A small SignalR client (JSON hub protocol over WebSockets), because the registry here lacks
/// Microsoft.AspNetCore.Http.Connections.Client. It speaks the published protocol: negotiate,
/// handshake, invocations with completions, server-to-client invocations, pings, close.
/// </summary>
public sealed class HubClient : IAsyncDisposable
{
    private const char Separator = '\u001e';
    private static readonly JsonSerializerOptions Json = JsonSerializerOptions.Web;
    private readonly ClientWebSocket _socket = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource<JsonElement?>> _pending = new();
    private readonly ConcurrentDictionary<string, Action<JsonElement>> _handlers = new();
    private readonly MemoryStream _incoming = new();
    private readonly SemaphoreSlim _send = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private Task? _receiver;
    private int _nextId;

    /// <summary>
    /// Registers a handler for a server-to-client call; it gets the arguments (a JSON array) and runs on
    /// the receive loop: read them at once (they are gone after it returns) and do not block.
    /// </summary>
    public void On(string target, Action<JsonElement> handler) => _handlers[target] = handler;

    /// <summary>Completes when the connection ends (the server closed it, or it was disposed).</summary>
    public Task Closed => _receiver ?? Task.CompletedTask;

    /// <summary>Negotiates (401 without a valid cookie), opens the WebSocket and completes the handshake.</summary>
    public async Task StartAsync(string baseUrl, string path, CookieContainer? cookies)
    {
        using var http = new HttpClient(new HttpClientHandler { CookieContainer = cookies ?? new CookieContainer(), UseCookies = true, AllowAutoRedirect = false });
        using var negotiate = await http.PostAsync($"{baseUrl}{path}/negotiate?negotiateVersion=1", null);
        if (!negotiate.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"negotiate answered {(int)negotiate.StatusCode}", null, negotiate.StatusCode);
        }

        var body = await negotiate.Content.ReadFromJsonAsync<JsonObject>() ?? throw new InvalidOperationException("empty negotiate");
        var token = body["connectionToken"]!.GetValue<string>();
        if (cookies is not null)
        {
            _socket.Options.Cookies = cookies;
        }

        await _socket.ConnectAsync(new Uri($"{baseUrl.Replace("http", "ws", StringComparison.Ordinal)}{path}?id={Uri.EscapeDataString(token)}"), CancellationToken.None);
        await SendAsync(new JsonObject { ["protocol"] = "json", ["version"] = 1 });
        var handshake = await ReceiveAsync(CancellationToken.None);
        var refusal = handshake.Count == 0 ? "the connection closed" : handshake[0].RootElement.TryGetProperty("error", out var error) ? error.GetString() : null;
        foreach (var message in handshake)
        {
            message.Dispose();
        }

        if (refusal is not null)
        {
            throw new InvalidOperationException($"handshake refused: {refusal}");
        }

        _receiver = Task.Run(ReceiveLoopAsync);
    }

    /// <summary>Invokes a hub method and returns its result; a hub error becomes an <see cref="InvalidOperationException"/>.</summary>
    public async Task<T> InvokeAsync<T>(string target, params object?[] arguments)
    {
        var id = Interlocked.Increment(ref _nextId).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var completion = new TaskCompletionSource<JsonElement?>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = completion;
        await SendAsync(new JsonObject
        {
            ["type"] = 1,
            ["invocationId"] = id,
            ["target"] = target,
            ["arguments"] = JsonSerializer.SerializeToNode(arguments, Json),
        });
        var result = await completion.Task.WaitAsync(TimeSpan.FromSeconds(60));
        return result is not { } value || value.ValueKind == JsonValueKind.Null ? default! : value.Deserialize<T>(Json)!;
    }

    private async Task SendAsync(JsonObject message)
    {
        var bytes = Encoding.UTF8.GetBytes(message.ToJsonString() + Separator);
        await _send.WaitAsync();
        try
        {
            await _socket.SendAsync(bytes, WebSocketMessageType.Text, true, CancellationToken.None);
        }
        finally
        {
            _send.Release();
        }
    }

    private async Task ReceiveLoopAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var messages = await ReceiveAsync(_stop.Token);
                if (messages.Count == 0)
                {
                    break;
                }

                foreach (var document in messages)
                {
                    using (document)
                    {
                        var m = document.RootElement;
                        switch (m.GetProperty("type").GetInt32())
                        {
                            case 1 when m.TryGetProperty("target", out var target) && _handlers.TryGetValue(target.GetString()!, out var handler):
                                handler(m.GetProperty("arguments"));
                                break;
                            case 3 when m.TryGetProperty("invocationId", out var id) && _pending.TryRemove(id.GetString()!, out var completion):
                                if (m.TryGetProperty("error", out var error))
                                {
                                    completion.TrySetException(new InvalidOperationException(error.GetString()));
                                }
                                else
                                {
                                    completion.TrySetResult(m.TryGetProperty("result", out var result) ? result.Clone() : null);
                                }

                                break;
                            case 6:
                                await SendAsync(new JsonObject { ["type"] = 6 });
                                break;
                            case 7:
                                return;
                        }
                    }
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Closed.
        }
        finally
        {
            foreach (var (_, completion) in _pending)
            {
                completion.TrySetException(new InvalidOperationException("The connection closed."));
            }
        }
    }

    /// <summary>Reads one WebSocket message and parses the hub messages in it (record-separator framed), straight from the bytes.</summary>
    private async Task<List<JsonDocument>> ReceiveAsync(CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        _incoming.SetLength(0);
        WebSocketReceiveResult result;
        do
        {
            result = await _socket.ReceiveAsync(buffer, ct);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return [];
            }

            _incoming.Write(buffer, 0, result.Count);
        }
        while (!result.EndOfMessage);

        var documents = new List<JsonDocument>();
        var rest = _incoming.GetBuffer().AsMemory(0, (int)_incoming.Length);
        while (!rest.IsEmpty)
        {
            var end = rest.Span.IndexOf((byte)Separator);
            var part = end < 0 ? rest : rest[..end];
            if (!part.IsEmpty)
            {
                documents.Add(JsonDocument.Parse(part));
            }

            rest = end < 0 ? default : rest[(end + 1)..];
        }

        return documents;
    }

    /// <summary>Drops the connection without a close handshake, as a cut network would.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Abort();
        if (_receiver is not null)
        {
            await _receiver;
        }

        _socket.Dispose();
        _stop.Dispose();
        _send.Dispose();
    }
}
