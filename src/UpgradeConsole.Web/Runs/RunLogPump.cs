using System.Threading.Channels;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Web.Runs;

/// <summary>
/// Moves a remote step's log into the run's log: followed from the phase's checkpoint, stored in
/// batches with the offset reached (so a reattach resumes exactly after the last stored line), pushed
/// to viewers by the writer. Reading and storing overlap through a bounded channel; a quiet step
/// still shows its last lines within <see cref="QuietFlush"/>.
/// </summary>
public static class RunLogPump
{
    public static readonly TimeSpan QuietFlush = TimeSpan.FromMilliseconds(50);

    public static async Task PumpAsync(RemoteStepEngine engine, StepLocation location, RunPhase phase, RunLogWriter log, Action<string>? onLine, CancellationToken ct)
    {
        var lines = Channel.CreateBounded<RemoteLogLine>(new BoundedChannelOptions(10_000) { SingleReader = true, SingleWriter = true });
        var producer = Task.Run(async () =>
        {
            try
            {
                await foreach (var line in engine.FollowAsync(location, phase.LogOffset, ct))
                {
                    await lines.Writer.WriteAsync(line, ct);
                }

                lines.Writer.Complete();
            }
            catch (Exception ex)
            {
                lines.Writer.Complete(ex);
            }
        }, ct);
        while (true)
        {
            var more = lines.Reader.WaitToReadAsync(ct).AsTask();
            if (!more.IsCompleted && log.HasPending && await Task.WhenAny(more, Task.Delay(QuietFlush, ct)) != more)
            {
                await log.FlushAsync(ct);
            }

            if (!await more)
            {
                break;
            }

            while (lines.Reader.TryRead(out var line))
            {
                onLine?.Invoke(line.Text);
                await log.WriteAsync(phase, line.Text, line.NextOffset, ct);
            }
        }

        await producer;
        await log.FlushAsync(ct);
    }
}
