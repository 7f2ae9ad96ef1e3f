using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Targets;

/// <summary>
/// The system-OpenSSH transport holds a target's stored key in a private ssh-agent (ADR 0014), never in a
/// file. That agent, and every other process the dashboard started for the target, ends with the dashboard:
/// at a graceful stop, and after a <c>kill -9</c> at the next start (before anyone touches the target).
/// </summary>
public sealed class OpenSshAgentsEndWithTheDashboardTests(SshServer ssh) : IAsyncDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("uc-agents-").FullName;

    [Fact]
    public async Task AGracefulStop_EndsTheAgentAndTheControlMaster()
    {
        int agent;
        await using (var app = new UpgradeConsoleApplicationFactory(DatabaseProvider.Sqlite, dataDirectory: _data))
        {
            await app.CreateFirstAdminAsync();
            var id = await AddOpenSshTargetAsync(app);
            var test = await app.AsAsync<TargetService, ConnectionTestRecord>(UpgradeConsoleApplicationFactory.AdminEmail, (s, a) => s.TestAsync(id, a));
            Assert.True(test.Succeeded, test.Error);
            agent = AgentOf(id);
            Assert.Contains("ssh-agent", CommandLine(agent), StringComparison.Ordinal);
            // The key is in the agent, not in a file under the data directory.
            Assert.DoesNotContain(Directory.EnumerateFiles(_data, "*", SearchOption.AllDirectories),
                f => !f.EndsWith(".db", StringComparison.Ordinal) && !f.Contains(".db-", StringComparison.Ordinal) && FileHolds(f, "PRIVATE KEY"));
        }

        await Eventually.TrueAsync(() => Task.FromResult(ProcessesUnder(_data).Count == 0), TimeSpan.FromSeconds(30),
            () => "still running: " + string.Join("; ", ProcessesUnder(_data).Select(p => $"{p} {CommandLine(p)}")));
        Assert.Null(CommandLine(agent));
    }

    [Fact]
    public async Task AfterAKill_TheNextStartEndsTheAgentTheKilledProcessLeft()
    {
        int id;
        string token;
        await using (var app = new UpgradeConsoleApplicationFactory(DatabaseProvider.Sqlite, dataDirectory: _data))
        {
            await app.CreateFirstAdminAsync();
            id = await AddOpenSshTargetAsync(app);
            token = await ApiTokens.CreateAsync(app, UpgradeConsoleApplicationFactory.AdminEmail, "agent test", "Operator");
        }

        int agent;
        await using (var first = await DashboardProcess.StartAsync(_data))
        {
            // Any read from the target connects, and so starts its agent (the read itself fails: no Fractal there).
            using var api = ApiTokens.Client(first.BaseUrl, token);
            using var _ = await api.GetAsync($"/api/v1/targets/{id}/fractal/users", TestContext.Current.CancellationToken);
            agent = AgentOf(id);
            Assert.Contains("ssh-agent", CommandLine(agent), StringComparison.Ordinal);
            await first.KillAsync();
        }

        // No shutdown ran: the agent outlives the killed process, holding the key.
        Assert.Contains("ssh-agent", CommandLine(agent), StringComparison.Ordinal);

        await using (var second = await DashboardProcess.StartAsync(_data))
        {
            await Eventually.TrueAsync(() => Task.FromResult(CommandLine(agent) is null), TimeSpan.FromSeconds(30), () => second.Output);
            Assert.False(File.Exists(Path.Combine(_data, "ssh", id.ToString(System.Globalization.CultureInfo.InvariantCulture), "agent")));
        }
    }

    private async Task<int> AddOpenSshTargetAsync(UpgradeConsoleApplicationFactory app)
    {
        var id = await app.AddTargetAsync(new()
        {
            ["Name"] = "openssh-agent",
            ["Host"] = ssh.Host,
            ["Port"] = ssh.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["SshUser"] = ssh.User,
            ["PrivateKey"] = ssh.ClientKey,
            ["WorkingDirectory"] = "/srv/fractal",
            ["Transport"] = "OpenSsh",
        });
        await app.PinHostKeyAsync(id, await ssh.HostKeyFingerprintAsync());
        return id;
    }

    /// <summary>The pid the pool wrote beside the target's agent socket.</summary>
    private int AgentOf(int targetId) =>
        int.Parse(File.ReadAllText(Path.Combine(_data, "ssh", targetId.ToString(System.Globalization.CultureInfo.InvariantCulture), "agent.pid")), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A live process's command line, or null when it is gone (or a zombie).</summary>
    private static string? CommandLine(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim();
            return text.Length == 0 ? null : text;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Live processes whose command line names <paramref name="directory"/> (agents, ControlMasters).</summary>
    private static List<int> ProcessesUnder(string directory) =>
        [.. Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0 && pid != Environment.ProcessId && CommandLine(pid)?.Contains(directory, StringComparison.Ordinal) == true)];

    private static bool FileHolds(string path, string text)
    {
        try
        {
            return File.ReadAllText(path).Contains(text, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    public ValueTask DisposeAsync()
    {
        // Whatever a failed assertion left running for this data directory, by pid.
        foreach (var pid in ProcessesUnder(_data))
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(pid);
                process.Kill();
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
            {
                // Gone meanwhile.
            }
        }

        Directory.Delete(_data, recursive: true);
        return ValueTask.CompletedTask;
    }
}
