using System.Collections.Concurrent;
using System.Net;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A real HTTP server on 127.0.0.1 (HttpListener) serving the bytes put at a path: GET and HEAD answer
/// 200 with them, any other path 404. Keeps every request's method and path, to count downloads.
/// </summary>
public sealed class FileServer : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly ConcurrentDictionary<string, byte[]> _files = new(StringComparer.Ordinal);
    private readonly Task _loop;

    public FileServer()
    {
        Port = LoopbackListener.Start(_listener);

        _loop = Task.Run(LoopAsync);
    }

    public int Port { get; }

    public string Url(string path) => $"http://127.0.0.1:{Port}{path}";

    public ConcurrentQueue<(string Method, string Path)> Requests { get; } = new();

    public int Gets(string path) => Requests.Count(r => r.Method == "GET" && r.Path == path);

    public void Put(string path, byte[] bytes) => _files[path] = bytes;

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

            var path = context.Request.Url!.AbsolutePath;
            Requests.Enqueue((context.Request.HttpMethod, path));
            try
            {
                if (_files.TryGetValue(path, out var bytes) && context.Request.HttpMethod is "GET" or "HEAD")
                {
                    context.Response.StatusCode = 200;
                    context.Response.ContentType = "application/zip";
                    context.Response.ContentLength64 = bytes.Length;
                    if (context.Request.HttpMethod == "GET")
                    {
                        await context.Response.OutputStream.WriteAsync(bytes);
                    }
                }
                else
                {
                    context.Response.StatusCode = 404;
                }

                context.Response.Close();
            }
            catch (HttpListenerException)
            {
                // The client went away mid-answer.
            }
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}
