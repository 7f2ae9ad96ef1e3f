using System.Collections.Concurrent;
using System.Net;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>One POST a <see cref="WebhookReceiver"/> got: path, headers and the body's exact bytes.</summary>
public sealed record ReceivedWebhook(string Path, IReadOnlyDictionary<string, string> Headers, byte[] Body);

/// <summary>
/// A real HTTP receiver on 127.0.0.1 (HttpListener): paths under /fail answer 500 with a short text, all others 200.
/// Keeps every request it got.
/// </summary>
public sealed class WebhookReceiver : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;

    public WebhookReceiver()
    {
        Port = LoopbackListener.Start(_listener);

        _loop = Task.Run(LoopAsync);
    }

    public int Port { get; }

    public string Url(string path) => $"http://127.0.0.1:{Port}{path}";

    public ConcurrentQueue<ReceivedWebhook> Received { get; } = new();

    public IReadOnlyList<ReceivedWebhook> At(string path) => Received.Where(r => r.Path == path).ToList();

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            var path = context.Request.Url!.AbsolutePath;
            Received.Enqueue(new ReceivedWebhook(path, context.Request.Headers.AllKeys.OfType<string>().ToDictionary(k => k, k => context.Request.Headers[k]!, StringComparer.OrdinalIgnoreCase), body.ToArray()));
            var failing = path.StartsWith("/fail", StringComparison.Ordinal);
            context.Response.StatusCode = failing ? 500 : 200;
            var answer = System.Text.Encoding.UTF8.GetBytes(failing ? "receiver is down for maintenance" : "thanks");
            await context.Response.OutputStream.WriteAsync(answer);
            context.Response.Close();
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}
