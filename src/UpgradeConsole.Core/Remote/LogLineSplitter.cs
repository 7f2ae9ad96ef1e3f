using System.Text;

namespace UpgradeConsole.Core.Remote;

/// <summary>
/// Cuts a byte stream that starts at a known offset into lines, remembering exactly how many
/// bytes it has consumed, so a reader can stop anywhere and resume without losing or repeating a
/// byte. Lines longer than the limit are cut (never inside a UTF-8 sequence); invalid UTF-8 is
/// replaced; a trailing CR (CRLF files) is dropped from the text.
/// </summary>
internal sealed class LogLineSplitter
{
    private static readonly Encoding Utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);
    private readonly int _maxLineBytes;
    private byte[] _pending;
    private int _pendingLength;
    private long _pendingStart;

    public LogLineSplitter(long startOffset, int maxLineBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLineBytes, 16);
        _maxLineBytes = maxLineBytes;
        _pending = new byte[Math.Min(maxLineBytes, 4096)];
        _pendingStart = startOffset;
    }

    /// <summary>Offset where the line not yet complete starts: a safe place to resume from scratch.</summary>
    public long LineStartOffset => _pendingStart;

    /// <summary>Offset just after the last byte pushed; where the next read must start.</summary>
    public long ConsumedOffset => _pendingStart + _pendingLength;

    /// <summary>Adds bytes; appends each completed line to <paramref name="lines"/>.</summary>
    public void Push(ReadOnlySpan<byte> data, List<RemoteLogLine> lines)
    {
        while (!data.IsEmpty)
        {
            var newline = data.IndexOf((byte)'\n');
            var room = _maxLineBytes - _pendingLength;
            if (newline >= 0 && newline <= room)
            {
                if (_pendingLength == 0)
                {
                    // Fast path: the whole line is in this chunk.
                    lines.Add(Line(_pendingStart, data[..newline], newline + 1));
                    _pendingStart += newline + 1;
                }
                else
                {
                    Append(data[..newline]);
                    lines.Add(Line(_pendingStart, _pending.AsSpan(0, _pendingLength), _pendingLength + 1));
                    _pendingStart += _pendingLength + 1;
                    _pendingLength = 0;
                }

                data = data[(newline + 1)..];
                continue;
            }

            if (newline < 0 && data.Length <= room)
            {
                Append(data);
                return;
            }

            // The line is longer than the limit: emit a piece that ends on a character boundary.
            var take = room;
            while (take > 0 && take < data.Length && (data[take] & 0xC0) == 0x80)
            {
                take--;
            }

            if (take == 0 && _pendingLength == 0)
            {
                take = room;
            }

            Append(data[..take]);
            lines.Add(Line(_pendingStart, _pending.AsSpan(0, _pendingLength), _pendingLength));
            _pendingStart += _pendingLength;
            _pendingLength = 0;
            data = data[take..];
        }
    }

    /// <summary>The last line when the stream ended without a newline.</summary>
    public RemoteLogLine? Flush()
    {
        if (_pendingLength == 0)
        {
            return null;
        }

        var line = Line(_pendingStart, _pending.AsSpan(0, _pendingLength), _pendingLength);
        _pendingStart += _pendingLength;
        _pendingLength = 0;
        return line;
    }

    private static RemoteLogLine Line(long offset, ReadOnlySpan<byte> bytes, int consumed)
    {
        if (!bytes.IsEmpty && bytes[^1] == (byte)'\r')
        {
            bytes = bytes[..^1];
        }

        return new RemoteLogLine(offset, offset + consumed, Utf8.GetString(bytes));
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        if (_pendingLength + bytes.Length > _pending.Length)
        {
            Array.Resize(ref _pending, Math.Max(_pendingLength + bytes.Length, Math.Min(_pending.Length * 2, _maxLineBytes)));
        }

        bytes.CopyTo(_pending.AsSpan(_pendingLength));
        _pendingLength += bytes.Length;
    }
}
