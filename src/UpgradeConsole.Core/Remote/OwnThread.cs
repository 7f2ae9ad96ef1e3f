namespace UpgradeConsole.Core.Remote;

/// <summary>
/// Runs one blocking SSH.NET call on a small thread of its own and awaits it. SSH.NET blocks its caller on round trips
/// even in its async methods: <c>SshClient.ConnectAsync</c> awaits only the TCP connect and the version exchange, then
/// waits on a handle for the key exchange, the service request and authentication; <c>SshCommand.ExecuteAsync</c>
/// waits for the channel's open confirmation and the exec reply before it returns its task. On thread-pool threads,
/// 50 hosts starting at once park 50 pool threads on these waits while the pool grows by about one thread every half
/// second, so handshakes and starts go a few at a time (measured with scripts/bench-fleet.sh, ADR 0025). A thread
/// costs about as much as one of the round trips it waits for.
/// </summary>
internal static class OwnThread
{
    public static Task<T> RunAsync<T>(string name, Func<T> work)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        PumpedOutput.StartThread(name, () =>
        {
            try
            {
                result.SetResult(work());
            }
            catch (Exception ex)
            {
                result.SetException(ex);
            }
        });
        return result.Task;
    }
}
