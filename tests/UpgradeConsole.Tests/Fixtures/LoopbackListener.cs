using System.Net;
using System.Net.Sockets;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>Starts an <see cref="HttpListener"/> on a free port of 127.0.0.1 (a few tries: the port may be taken between probe and start).</summary>
public static class LoopbackListener
{
    public static int Start(HttpListener listener)
    {
        ArgumentNullException.ThrowIfNull(listener);
        for (var attempt = 0; ; attempt++)
        {
            int port;
            using (var probe = new TcpListener(IPAddress.Loopback, 0))
            {
                probe.Start();
                port = ((IPEndPoint)probe.LocalEndpoint).Port;
            }

            try
            {
                listener.Prefixes.Add($"http://127.0.0.1:{port}/");
                listener.Start();
                return port;
            }
            catch (HttpListenerException) when (attempt < 5)
            {
                listener.Prefixes.Clear();
            }
        }
    }
}

/// <summary>Waits until a server a test started accepts connections, failing at once when it died instead.</summary>
public static class Listening
{
    /// <summary>
    /// Polls (<see cref="Eventually"/>) a TCP connect to <paramref name="host"/>:<paramref name="port"/> until it succeeds;
    /// <paramref name="died"/> says why the server is gone (null while it runs), which ends the wait with that reason.
    /// </summary>
    public static async Task WaitAsync(string host, int port, Func<string?> died, TimeSpan timeout)
    {
        string? death = null;
        var up = await Eventually.WithinAsync(async () =>
        {
            if ((death = died()) is not null)
            {
                return true;
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(host, port);
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }, timeout);
        if (death is not null)
        {
            throw new InvalidOperationException(death);
        }

        if (!up)
        {
            throw new TimeoutException($"Nothing listened on {host}:{port} within {timeout}.");
        }
    }
}
