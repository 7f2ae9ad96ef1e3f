using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Targets;

/// <summary>
/// The System OpenSSH transport keeps one ControlMaster per target, and nothing of it outlives the dashboard:
/// a graceful stop ends it, and after a <c>kill -9</c> the next start ends it before anyone touches the target.
/// It takes no key stored in the dashboard (no private ssh-agent any more, ADR 0014): the form refuses one, and a
/// target an earlier version set up that way moves to SSH.NET at start, with an audit event.
/// </summary>
public sealed class OpenSshMastersEndWithTheDashboardTests(SshServer ssh) : IAsyncDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("uc-masters-").FullName;

    [Fact]
    public async Task AGracefulStop_EndsTheControlMaster()
    {
        await using (var app = new UpgradeConsoleApplicationFactory(DatabaseProvider.Sqlite, dataDirectory: _data))
        {
            await app.CreateFirstAdminAsync();
            var id = await AddOpenSshTargetAsync(app);
            var test = await app.AsAsync<TargetService, ConnectionTestRecord>(UpgradeConsoleApplicationFactory.AdminEmail, (s, a) => s.TestAsync(id, a));
            Assert.True(test.Succeeded, test.Error);
            Assert.NotEmpty(SshUnder(_data));
        }

        await Eventually.TrueAsync(() => Task.FromResult(SshUnder(_data).Count == 0), TimeSpan.FromSeconds(30),
            () => "still running: " + string.Join("; ", SshUnder(_data).Select(p => $"{p} {CommandLine(p)}")));
    }

    [Fact]
    public async Task AfterAKill_TheNextStartEndsTheMasterTheKilledProcessLeft()
    {
        int id;
        string token;
        await using (var app = new UpgradeConsoleApplicationFactory(DatabaseProvider.Sqlite, dataDirectory: _data))
        {
            await app.CreateFirstAdminAsync();
            id = await AddOpenSshTargetAsync(app);
            token = await ApiTokens.CreateAsync(app, UpgradeConsoleApplicationFactory.AdminEmail, "master test", "Operator");
        }

        List<int> masters;
        await using (var first = await DashboardProcess.StartAsync(_data))
        {
            // Any read from the target connects, and so starts its master (the read itself fails: no Fractal there).
            using var api = ApiTokens.Client(first.BaseUrl, token);
            using var _ = await api.GetAsync($"/api/v1/targets/{id}/fractal/users", TestContext.Current.CancellationToken);
            masters = SshUnder(_data);
            Assert.NotEmpty(masters);
            await first.KillAsync();
        }

        // No shutdown ran: the master outlives the killed process, still logged in to the target.
        Assert.All(masters, pid => Assert.NotNull(CommandLine(pid)));

        await using (var second = await DashboardProcess.StartAsync(_data))
        {
            await Eventually.TrueAsync(() => Task.FromResult(masters.All(pid => CommandLine(pid) is null)), TimeSpan.FromSeconds(30), () => second.Output);
            Assert.Contains("Ended the OpenSSH master a stopped process left", second.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task AStoredKeyForTheOpenSshClient_IsRefused_AndAnOlderTargetWithOne_MovesToSshNetAtStart()
    {
        int id;
        await using (var app = new UpgradeConsoleApplicationFactory(DatabaseProvider.Sqlite, dataDirectory: _data))
        {
            await app.CreateFirstAdminAsync();
            var refused = await app.AsAsync<TargetService, TargetResult>(UpgradeConsoleApplicationFactory.AdminEmail, (s, a) => s.CreateAsync(new TargetForm
            {
                Name = "openssh-stored",
                Host = ssh.Host,
                Port = ssh.Port,
                SshUser = ssh.User,
                PrivateKey = ssh.ClientKey,
                WorkingDirectory = "/srv/fractal",
                Transport = SshTransport.OpenSsh,
            }, a));
            Assert.False(refused.Succeeded);
            Assert.Contains(TargetService.OpenSshStoredKeyRefusal, refused.Errors);

            // What an earlier version could store: the stored key on the OpenSSH client.
            id = await app.AddTargetAsync(new()
            {
                ["Name"] = "from-an-earlier-version",
                ["Host"] = ssh.Host,
                ["Port"] = ssh.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["SshUser"] = ssh.User,
                ["PrivateKey"] = ssh.ClientKey,
                ["WorkingDirectory"] = "/srv/fractal",
            });
            await app.PinHostKeyAsync(id, await ssh.HostKeyFingerprintAsync());
            await using var scope = app.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            await db.Targets.Where(t => t.Id == id).ExecuteUpdateAsync(s => s.SetProperty(t => t.Transport, SshTransport.OpenSsh), TestContext.Current.CancellationToken);
        }

        await using (var restarted = new UpgradeConsoleApplicationFactory(DatabaseProvider.Sqlite, dataDirectory: _data))
        {
            _ = restarted.Services;
            var test = await restarted.AsAsync<TargetService, ConnectionTestRecord>(UpgradeConsoleApplicationFactory.AdminEmail, (s, a) => s.TestAsync(id, a));
            Assert.True(test.Succeeded, test.Error);
            var target = await restarted.AsAsync<TargetService, Target?>(UpgradeConsoleApplicationFactory.AdminEmail, (s, a) => s.FindAsync(id, a));
            Assert.Equal(SshTransport.SshNet, target!.Transport);
            var moved = Assert.Single(await restarted.AuditEventsAsync(), e => e.Action == "target.transport-switched");
            Assert.Equal("system", moved.Actor);
            Assert.Equal(id, moved.TargetId);
            // Nothing for the OpenSSH client was started for it.
            Assert.Empty(SshUnder(_data));
        }
    }

    private async Task<int> AddOpenSshTargetAsync(UpgradeConsoleApplicationFactory app)
    {
        var id = await app.AddTargetAsync(new()
        {
            ["Name"] = "openssh-master",
            ["Host"] = ssh.Host,
            ["Port"] = ssh.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["SshUser"] = ssh.User,
            ["AuthMethod"] = "KeyFile",
            ["KeyFilePath"] = ssh.ClientKeyPath,
            ["WorkingDirectory"] = "/srv/fractal",
            ["Transport"] = "OpenSsh",
        });
        await app.PinHostKeyAsync(id, await ssh.HostKeyFingerprintAsync());
        return id;
    }

    /// <summary>Live ssh processes (ControlMasters) whose command line names <paramref name="directory"/>.</summary>
    private static List<int> SshUnder(string directory) =>
        [.. ProcessesUnder(directory).Where(pid => CommandLine(pid)?.StartsWith("ssh", StringComparison.Ordinal) == true)];

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

    /// <summary>Live processes whose command line names <paramref name="directory"/>.</summary>
    private static List<int> ProcessesUnder(string directory) =>
        [.. Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0 && pid != Environment.ProcessId && CommandLine(pid)?.Contains(directory, StringComparison.Ordinal) == true)];

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
