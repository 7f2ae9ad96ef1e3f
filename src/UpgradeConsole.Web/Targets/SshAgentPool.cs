using System.Collections.Concurrent;
using System.Diagnostics;
using UpgradeConsole.Web.Hosting;

namespace UpgradeConsole.Web.Targets;

/// <summary>
/// One private ssh-agent per OpenSSH target that uses a stored key (SSH.NET targets get the key in memory instead). The decrypted key goes to the agent
/// on ssh-add's standard input and is never written to disk; ssh reaches it through a socket in a 0700
/// directory of the data directory. Keys are added with a one-hour lifetime and re-added before it runs
/// out. The agents end with the dashboard (stopping: <see cref="DisposeAsync"/>; killed: the next start ends
/// the agents it left, <see cref="StartAsync"/>), and an orphan forgets its key within the hour anyway.
/// Why an agent and not SSH.NET's in-memory key or a key file: ADR 0014.
/// </summary>
public sealed class SshAgentPool(DataDirectory data, TimeProvider clock, ILogger<SshAgentPool> logger) : IAsyncDisposable, IHostedService
{
    private static readonly TimeSpan KeyLifetime = TimeSpan.FromHours(1);
    private readonly ConcurrentDictionary<int, Agent> _agents = new();
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>The agent socket for <paramref name="targetId"/>, holding <paramref name="privateKey"/>.</summary>
    public async Task<string> SocketForAsync(int targetId, string privateKey, string fingerprint, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (_agents.TryGetValue(targetId, out var agent) && !agent.Process.HasExited && agent.Fingerprint == fingerprint
                && clock.GetUtcNow() - agent.AddedAt < KeyLifetime - TimeSpan.FromMinutes(10))
            {
                return agent.Socket;
            }

            if (agent is not null)
            {
                Stop(agent);
            }

            var socket = Path.Combine(data.Subdirectory("ssh"), targetId.ToString(System.Globalization.CultureInfo.InvariantCulture), "agent");
            Directory.CreateDirectory(Path.GetDirectoryName(socket)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            StopOrphan(socket);
            var started = await StartAgentAsync(socket, ct);
            await File.WriteAllTextAsync(socket + ".pid", started.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), ct);
            await AddKeyAsync(socket, privateKey, ct);
            _agents[targetId] = new Agent(started, socket, fingerprint, clock.GetUtcNow());
            logger.LogInformation("Started the ssh-agent of target {TargetId}", targetId);
            return socket;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Stops the target's agent (its key was replaced or the target deleted).</summary>
    public void Forget(int targetId)
    {
        if (_agents.TryRemove(targetId, out var agent))
        {
            Stop(agent);
        }
    }

    /// <summary>Ends the agents a killed dashboard process left on this data directory (their pid files name them).</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var root = data.Combine("ssh");
        if (Directory.Exists(root))
        {
            foreach (var pidFile in Directory.EnumerateFiles(root, "agent.pid", SearchOption.AllDirectories))
            {
                var socket = pidFile[..^".pid".Length];
                StopOrphan(socket);
                File.Delete(socket);
            }
        }

        return Task.CompletedTask;
    }

    /// <summary>
    /// Nothing here: a phase still stopping may open one more OpenSSH connection. The agents end when the host
    /// disposes the pool, after every hosted service (Hangfire's server among them) has stopped.
    /// </summary>
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public ValueTask DisposeAsync()
    {
        foreach (var id in _agents.Keys)
        {
            Forget(id);
        }

        _gate.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>Normalizes a pasted key: Unix newlines, one final newline, no surrounding blanks.</summary>
    public static string NormalizeKey(string key) => key.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n').Trim() + "\n";

    private static async Task<Process> StartAgentAsync(string socket, CancellationToken ct)
    {
        File.Delete(socket);
        var start = new ProcessStartInfo("ssh-agent") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { "-D", "-a", socket })
        {
            start.ArgumentList.Add(a);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start ssh-agent.");
        process.StandardInput.Close();
        _ = process.StandardOutput.ReadToEndAsync(ct);
        _ = process.StandardError.ReadToEndAsync(ct);
        for (var i = 0; i < 100 && !File.Exists(socket); i++)
        {
            if (process.HasExited)
            {
                break;
            }

            await Task.Delay(20, ct);
        }

        if (!File.Exists(socket))
        {
            process.Kill();
            throw new InvalidOperationException("ssh-agent did not create its socket.");
        }

        return process;
    }

    private static async Task AddKeyAsync(string socket, string privateKey, CancellationToken ct)
    {
        var lifetime = ((int)KeyLifetime.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var added = await RunAsync("ssh-add", ["-t", lifetime, "-"], socket, NormalizeKey(privateKey), ct);
        // Exit 2 is "cannot reach the agent": a new agent's socket file exists a moment before it listens
        // (seen once under load, reported as a bad key). Exit 1 is the key itself.
        for (var i = 0; i < 20 && added.ExitCode == 2; i++)
        {
            await Task.Delay(50, ct);
            added = await RunAsync("ssh-add", ["-t", lifetime, "-"], socket, NormalizeKey(privateKey), ct);
        }

        if (added.ExitCode != 0)
        {
            throw new ArgumentException(
                "This is not a usable private key. Paste the whole OpenSSH or PEM private key, without a passphrase " +
                "(for a passphrase-protected key, use a key file or the dashboard user's ssh-agent).");
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string file, string[] args, string socket, string? input, CancellationToken ct)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        start.Environment["SSH_AUTH_SOCK"] = socket;
        start.Environment["SSH_ASKPASS_REQUIRE"] = "never";
        start.Environment.Remove("DISPLAY");
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {file}.");
        var output = process.StandardOutput.ReadToEndAsync(ct);
        var error = process.StandardError.ReadToEndAsync(ct);
        if (input is not null)
        {
            await process.StandardInput.WriteAsync(input);
        }

        process.StandardInput.Close();
        await process.WaitForExitAsync(ct);
        return (process.ExitCode, await output + await error);
    }

    /// <summary>
    /// Ends the agent a killed dashboard left on this socket (its pid file names it; /proc confirms it is
    /// that ssh-agent), so a crash does not leave an agent holding the key until its lifetime runs out.
    /// </summary>
    private void StopOrphan(string socket)
    {
        if (!int.TryParse(File.Exists(socket + ".pid") ? File.ReadAllText(socket + ".pid") : null, out var pid))
        {
            return;
        }

        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
            if (cmdline.Contains("ssh-agent", StringComparison.Ordinal) && cmdline.Contains(socket, StringComparison.Ordinal))
            {
                using var orphan = Process.GetProcessById(pid);
                orphan.Kill();
                logger.LogInformation("Ended the ssh-agent {Pid} a previous dashboard process left on {Socket}", pid, socket);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
        {
            // Gone already, or not ours.
        }

        File.Delete(socket + ".pid");
    }

    private static void Stop(Agent agent)
    {
        try
        {
            if (!agent.Process.HasExited)
            {
                agent.Process.Kill();
            }
        }
        catch (InvalidOperationException)
        {
            // Gone already.
        }

        agent.Process.Dispose();
        File.Delete(agent.Socket);
        File.Delete(agent.Socket + ".pid");
    }

    private sealed record Agent(Process Process, string Socket, string Fingerprint, DateTimeOffset AddedAt);
}
