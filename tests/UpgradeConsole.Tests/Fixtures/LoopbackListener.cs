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
