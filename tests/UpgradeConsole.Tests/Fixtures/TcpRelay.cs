using System.Net;
using System.Net.Sockets;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A TCP relay on 127.0.0.1 in front of a real server, so a test can cut every live connection at
/// once (a reset, as a dropped link looks to both ends) whatever SSH client made it.
/// </summary>
public sealed class TcpRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(Socket Client, Socket Server)> _pairs = [];
    private readonly Task _accepting;
    private bool _refusing;

    public TcpRelay(int targetPort)
    {
        _targetPort = targetPort;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    /// <summary>While set, a new connection is reset as soon as it arrives (the server looks down); live ones are left alone (see <see cref="CutAll"/>).</summary>
    public bool Refusing
    {
        get => Volatile.Read(ref _refusing);
        set => Volatile.Write(ref _refusing, value);
    }

    /// <summary>Resets every relayed connection; returns how many there were.</summary>
    public int CutAll()
    {
        List<(Socket Client, Socket Server)> pairs;
        lock (_pairs)
        {
            pairs = [.. _pairs];
            _pairs.Clear();
        }

        foreach (var (client, server) in pairs)
        {
            Reset(client);
            Reset(server);
        }

        return pairs.Count;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        CutAll();
        try
        {
            await _accepting;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptSocketAsync(_stop.Token);
            if (Refusing)
            {
                Reset(client);
                continue;
            }

            var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await server.ConnectAsync(IPAddress.Loopback, _targetPort, _stop.Token);
            }
            catch (SocketException)
            {
                Reset(client);
                server.Dispose();
                continue;
            }

            lock (_pairs)
            {
                _pairs.Add((client, server));
            }

            _ = PumpAsync(client, server);
        }
    }

    private async Task PumpAsync(Socket client, Socket server)
    {
        await Task.WhenAny(CopyAsync(client, server), CopyAsync(server, client));
        lock (_pairs)
        {
            _pairs.Remove((client, server));
        }

        client.Dispose();
        server.Dispose();
    }

    private static async Task CopyAsync(Socket from, Socket to)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Cut, or closed by the other side.
        }
    }

    private static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Gone already.
        }
    }
}
