using System.Buffers;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;

namespace UpgradeConsole.Core.Remote;

/// <summary>
/// A blocking stream read by a thread of its own into a small bounded queue, read asynchronously. SSH.NET's command
/// streams only block (<c>PipeStream.Read</c> waits on a monitor; its <c>ReadAsync</c> is the base class's, which blocks
/// a thread-pool thread and never sees a cancellation once waiting). Through this, a read honours its cancellation
/// while the step prints nothing (the dashboard stopping mid-step), and 200 hosts waiting on silent steps hold 200
/// small dedicated threads instead of starving the thread pool. The pump ends when the inner stream ends or is
/// disposed (the channel closed); an error of the inner stream reaches the reader as itself.
/// </summary>
internal sealed class PumpedOutput : Stream
{
    private const int ChunkBytes = 64 * 1024;
    private readonly Channel<(byte[] Buffer, int Count)> _chunks = Channel.CreateBounded<(byte[], int)>(new BoundedChannelOptions(4) { SingleReader = true, SingleWriter = true });
    private byte[]? _current;
    private int _offset;
    private int _count;

    public PumpedOutput(Stream inner)
    {
        StartThread("ssh-stdout", () => Pump(inner));
    }

    /// <summary>A background thread with a small stack, for one blocking reader.</summary>
    internal static void StartThread(string name, Action work) =>
        new Thread(() => work(), maxStackSize: 256 * 1024) { IsBackground = true, Name = name }.Start();

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_current is null)
        {
            try
            {
                (_current, _count) = await _chunks.Reader.ReadAsync(cancellationToken);
                _offset = 0;
            }
            catch (ChannelClosedException ex)
            {
                if (ex.InnerException is { } failure)
                {
                    ExceptionDispatchInfo.Capture(failure).Throw();
                }

                return 0;
            }
        }

        var n = Math.Min(buffer.Length, _count - _offset);
        _current.AsSpan(_offset, n).CopyTo(buffer.Span);
        _offset += n;
        if (_offset == _count)
        {
            ArrayPool<byte>.Shared.Return(_current);
            _current = null;
        }

        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private void Pump(Stream inner)
    {
        try
        {
            while (true)
            {
                var buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
                int read;
                try
                {
                    read = inner.Read(buffer, 0, buffer.Length);
                }
                catch
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    throw;
                }

                if (read <= 0)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    break;
                }

                // The queue is bounded: a slow reader holds the pump (and SSH's window) back instead of memory growing.
                if (!_chunks.Writer.WaitToWriteAsync().AsTask().GetAwaiter().GetResult() || !_chunks.Writer.TryWrite((buffer, read)))
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    break;
                }
            }

            _chunks.Writer.TryComplete();
        }
        catch (ObjectDisposedException)
        {
            // The channel was closed under the read (the process was disposed): the output ends there.
            _chunks.Writer.TryComplete();
        }
        catch (Exception ex)
        {
            _chunks.Writer.TryComplete(ex);
        }
    }

    protected override void Dispose(bool disposing)
    {
        // Stops the pump from queueing more; what it holds goes back to the pool.
        _chunks.Writer.TryComplete();
        while (_chunks.Reader.TryRead(out var chunk))
        {
            ArrayPool<byte>.Shared.Return(chunk.Buffer);
        }

        base.Dispose(disposing);
    }
}
