using System.Net;
using System.Net.Sockets;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Remote;

/// <summary>
/// The system OpenSSH client against the real sshd: each common way a connection fails reads as the same one plain
/// sentence SSH.NET gives (SshNetConnectionTests), never ssh's raw output.
/// </summary>
public sealed class OpenSshErrorsTests(SshServer ssh) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("uc-cm-").FullName;

    [Fact]
    public async Task KeyTheServerDoesNotKnow_IsRefused_WithWhatToDo()
    {
        var (privateKey, _) = await SshServer.NewKeyAsync("ed25519");
        var keyFile = Path.Combine(_directory, "other_key");
        await File.WriteAllTextAsync(keyFile, privateKey, TestContext.Current.CancellationToken);
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var error = await FailureAsync(Endpoint() with { Identity = new SshIdentity.KeyFile(keyFile) });
        Assert.Equal(SshFailure.KeyRefused, error.Failure);
        Assert.Equal($"{ssh.User}@{ssh.Host} refused the dashboard's key. Add its public key to ~{ssh.User}/.ssh/authorized_keys on the target, or check the SSH user.", error.Message);
    }

    [Fact]
    public async Task NothingListening_IsRefusedConnection()
    {
        var port = ProcessRunner.FreePort();
        var error = await FailureAsync(Endpoint() with { Port = port });
        Assert.Equal(SshFailure.Unreachable, error.Failure);
        Assert.Equal($"[127.0.0.1]:{port} refused the connection: no SSH server listens on port {port} there, or a firewall rejects it.", error.Message);
    }

    [Fact]
    public async Task UnknownHostName_IsADnsFailure()
    {
        var error = await FailureAsync(Endpoint() with { Host = "no-such-host.invalid" });
        Assert.Equal(SshFailure.Dns, error.Failure);
        Assert.Equal("The host name no-such-host.invalid could not be resolved (DNS). Check the spelling, or the DNS of the dashboard's host.", error.Message);
    }

    [Fact]
    public async Task AServerThatNeverAnswers_TimesOut()
    {
        // Accepts the TCP connection and then says nothing, like a host behind a black-holing firewall.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        var error = await FailureAsync(Endpoint() with { Port = port, ConnectTimeout = TimeSpan.FromSeconds(2) });
        Assert.Equal(SshFailure.Timeout, error.Failure);
        Assert.Equal($"[127.0.0.1]:{port} did not answer within 2 s: the host is down, or a firewall drops the connection.", error.Message);
    }

    [Fact]
    public async Task ChangedHostKey_IsAMismatch_AndNeverAuthenticated()
    {
        var (_, otherPublic) = await SshServer.NewKeyAsync("ed25519");
        var parts = otherPublic.Split(' ');
        var knownHosts = Path.Combine(_directory, "known_hosts.other");
        await File.WriteAllTextAsync(knownHosts, new HostKey(parts[0], parts[1]).KnownHostsLine(ssh.Host, ssh.Port) + "\n", TestContext.Current.CancellationToken);
        // A client key of this test's own, authorized on the shared sshd: other tests sign in there at the same
        // time, so "never authenticated" is asked of this key's fingerprint, not of a count of sign-ins.
        var (privateKey, publicKey) = await SshServer.NewKeyAsync("ed25519");
        var keyFile = Path.Combine(_directory, "own_key");
        await File.WriteAllTextAsync(keyFile, privateKey, TestContext.Current.CancellationToken);
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await File.WriteAllTextAsync(keyFile + ".pub", publicKey + "\n", TestContext.Current.CancellationToken);
        var fingerprint = (await ProcessRunner.RunAsync("ssh-keygen", ["-l", "-E", "sha256", "-f", keyFile + ".pub"])).StandardOutput.Split(' ')[1];
        await ssh.AuthorizeAsync(publicKey);
        var own = Endpoint() with { Identity = new SshIdentity.KeyFile(keyFile) };
        var signedIn = new OpenSshShell(own with { ControlPath = Path.Combine(_directory, "cm-own") });
        Assert.Equal(0, (await signedIn.RunAsync("true", TestContext.Current.CancellationToken)).ExitCode);
        await signedIn.CloseAsync();
        Assert.Contains(fingerprint, ssh.Log, StringComparison.Ordinal);
        var before = System.Text.RegularExpressions.Regex.Count(ssh.Log, System.Text.RegularExpressions.Regex.Escape(fingerprint));

        var error = await FailureAsync(own with { KnownHostsFile = knownHosts });
        Assert.IsType<HostKeyMismatchException>(error);
        Assert.Equal($"{ssh.User}@{ssh.Host} did not present the pinned host key. This can be a man-in-the-middle attack; nothing will run on this target until an Admin checks the new key and pins it again.", error.Message);
        Assert.Equal(before, System.Text.RegularExpressions.Regex.Count(ssh.Log, System.Text.RegularExpressions.Regex.Escape(fingerprint)));
    }

    [Theory]
    [InlineData("ssh: connect to host 10.255.255.1 port 22: No route to host\r\n", SshFailure.Unreachable, "cannot be reached from the dashboard's host (no route)")]
    [InlineData("ssh: connect to host 10.255.255.1 port 22: Network is unreachable\r\n", SshFailure.Unreachable, "cannot be reached from the dashboard's host (no route)")]
    [InlineData("ssh: connect to host 192.0.2.1 port 22: Connection timed out\r\n", SshFailure.Timeout, "did not answer within 15 s")]
    [InlineData("kex_exchange_identification: Connection closed by remote host\r\nConnection closed by 127.0.0.1 port 2222\r\n", SshFailure.Lost, "closed the connection before signing in")]
    public void MessagesNoLoopbackCanProvoke_ReadAsOneSentence(string stderr, SshFailure failure, string expected)
    {
        // No route and a dropped SYN cannot be made on loopback; these are ssh's own lines for them (sshconnect.c).
        var error = OpenSshErrors.Explain(stderr, Endpoint() with { Host = "192.0.2.1" });
        Assert.Equal(failure, error.Failure);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("ssh:", error.Message, StringComparison.Ordinal);
    }

    private SshEndpoint Endpoint() => ssh.Endpoint(_directory) with { HostKeyAlgorithm = RemoteSession.ServerKey(ssh).Type };

    private static async Task<SshConnectionException> FailureAsync(SshEndpoint endpoint)
    {
        var shell = new OpenSshShell(endpoint);
        try
        {
            return await Assert.ThrowsAnyAsync<SshConnectionException>(() => shell.RunAsync("true", TestContext.Current.CancellationToken, TimeSpan.FromSeconds(60)));
        }
        finally
        {
            await shell.CloseAsync();
        }
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
