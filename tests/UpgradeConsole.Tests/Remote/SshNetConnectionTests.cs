using System.Net;
using System.Net.Sockets;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Remote;

/// <summary>
/// SSH.NET against the real sshd: every key type (and passphrases) from memory, and each way a
/// connection fails explained in one plain sentence an admin can act on.
/// </summary>
public sealed class SshNetConnectionTests(SshServer ssh)
{
    [Theory]
    [InlineData("ed25519", null, "")]
    [InlineData("ecdsa", 256, "")]
    [InlineData("ecdsa", 521, "ecdsa pass")]
    [InlineData("rsa", 3072, "")]
    [InlineData("ed25519", null, "pass phrase ünï ✓")]
    [InlineData("rsa", 3072, "rsa-pass")]
    public async Task Keys_OfEveryType_FromMemory_LogIn(string type, int? bits, string passphrase)
    {
        var (privateKey, publicKey) = await SshServer.NewKeyAsync(type, bits, passphrase);
        await ssh.AuthorizeAsync(publicKey);
        var key = SshKeys.FromText(privateKey, passphrase);
        // The fingerprint shown for a stored key is ssh-keygen's own.
        var pub = publicKey.Split(' ');
        Assert.StartsWith(new HostKey(pub[0], pub[1]).Fingerprint + " (", SshKeys.Fingerprint(key), StringComparison.Ordinal);

        await using var connection = new SshNetConnection(RemoteSession.Endpoint(ssh, ssh.Port, RemoteSession.ServerKey(ssh)) with { Keys = [key] });
        var result = await new SshNetShell(connection).RunAsync("id -un", TestContext.Current.CancellationToken);
        Assert.Equal(ssh.User, result.Output.Trim());
        if (type == "rsa")
        {
            // sshd here refuses SHA-1 "ssh-rsa" signatures: logging in proves rsa-sha2.
            var fingerprint = new HostKey(pub[0], pub[1]).Fingerprint;
            // sshd's log arrives on its stderr a moment after the login: poll it, bounded.
            await Eventually.TrueAsync(() => Task.FromResult(ssh.Log.Contains("RSA " + fingerprint, StringComparison.Ordinal)), TimeSpan.FromSeconds(5), () => ssh.Log);

            Assert.Contains($"Accepted publickey for {ssh.User} from 127.0.0.1", ssh.Log, StringComparison.Ordinal);
            Assert.Contains("RSA " + fingerprint, ssh.Log, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task WrongPassphrase_SaysSo()
    {
        var (privateKey, _) = await SshServer.NewKeyAsync("ed25519", passphrase: "right");
        var error = Assert.ThrowsAny<SshConnectionException>(() => SshKeys.FromText(privateKey, "wrong"));
        Assert.Equal(SshFailure.BadKey, error.Failure);
        Assert.True(error.Message.Contains("passphrase is wrong", StringComparison.Ordinal), error.Message + " / " + error.StandardError);
    }

    [Fact]
    public async Task MissingPassphrase_SaysWhereToEnterIt()
    {
        var (privateKey, _) = await SshServer.NewKeyAsync("ed25519", passphrase: "set");
        var error = Assert.ThrowsAny<SshConnectionException>(() => SshKeys.FromText(privateKey, null));
        Assert.Equal(SshFailure.BadKey, error.Failure);
        Assert.Contains("protected by a passphrase", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NotAKey_IsCalledThat()
    {
        var error = Assert.ThrowsAny<SshConnectionException>(() => SshKeys.FromText("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n", null));
        Assert.Equal(SshFailure.BadKey, error.Failure);
        Assert.Contains("not a private key", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeyTheServerDoesNotKnow_IsRefused_WithWhatToDo()
    {
        var (privateKey, _) = await SshServer.NewKeyAsync("ed25519");
        var error = await ConnectFailureAsync(RemoteSession.Endpoint(ssh, ssh.Port, RemoteSession.ServerKey(ssh)) with { Keys = [SshKeys.FromText(privateKey, null)] });
        Assert.Equal(SshFailure.KeyRefused, error.Failure);
        Assert.Equal($"{ssh.User}@[{ssh.Host}]:{ssh.Port} refused the dashboard's key. Add its public key to ~{ssh.User}/.ssh/authorized_keys on the target, or check the SSH user.", error.Message);
    }

    [Fact]
    public async Task NothingListening_IsRefusedConnection()
    {
        var port = ProcessRunner.FreePort();
        var error = await ConnectFailureAsync(RemoteSession.Endpoint(ssh, port, RemoteSession.ServerKey(ssh)));
        Assert.Equal(SshFailure.Unreachable, error.Failure);
        Assert.Equal($"[127.0.0.1]:{port} refused the connection: no SSH server listens on port {port} there, or a firewall rejects it.", error.Message);
    }

    [Fact]
    public async Task UnknownHostName_IsADnsFailure()
    {
        var error = await ConnectFailureAsync(RemoteSession.Endpoint(ssh, 22, RemoteSession.ServerKey(ssh)) with { Host = "no-such-host.invalid" });
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
        var error = await ConnectFailureAsync(RemoteSession.Endpoint(ssh, port, RemoteSession.ServerKey(ssh)) with { ConnectTimeout = TimeSpan.FromSeconds(2) });
        Assert.Equal(SshFailure.Timeout, error.Failure);
        Assert.Equal($"[127.0.0.1]:{port} did not answer within 2 s: the host is down, or a firewall drops the connection.", error.Message);
    }

    [Fact]
    public async Task ChangedHostKey_NamesBothFingerprints_AndIsNeverAuthenticated()
    {
        var (_, otherPublic) = await SshServer.NewKeyAsync("ed25519");
        var parts = otherPublic.Split(' ');
        var pinned = new HostKey(parts[0], parts[1]);
        // A client key of this test's own, authorized on the shared sshd: other tests sign in there at the same
        // time, so "never authenticated" is asked of this key's fingerprint in sshd's log, not of a count of sign-ins.
        var (privateKey, publicKey) = await SshServer.NewKeyAsync("ed25519");
        var key = SshKeys.FromText(privateKey, null);
        var fingerprint = SshKeys.Fingerprint(key).Split(' ')[0];
        await ssh.AuthorizeAsync(publicKey);
        await using (var signedIn = new SshNetConnection(RemoteSession.Endpoint(ssh, ssh.Port, RemoteSession.ServerKey(ssh)) with { Keys = [key] }))
        {
            await signedIn.ClientAsync(TestContext.Current.CancellationToken);
        }

        await Eventually.TrueAsync(() => Task.FromResult(ssh.Log.Contains(fingerprint, StringComparison.Ordinal)), TimeSpan.FromSeconds(30), () => "sshd never logged the test key's sign-in with its fingerprint " + fingerprint);
        var before = System.Text.RegularExpressions.Regex.Count(ssh.Log, System.Text.RegularExpressions.Regex.Escape(fingerprint));

        var error = await ConnectFailureAsync(RemoteSession.Endpoint(ssh, ssh.Port, pinned) with { Keys = [SshKeys.FromText(privateKey, null)] });
        Assert.IsType<HostKeyMismatchException>(error);
        Assert.Equal(SshFailure.HostKeyChanged, error.Failure);
        Assert.Contains($"presented the host key {await ssh.HostKeyFingerprintAsync()}, not the pinned {pinned.Fingerprint}", error.Message, StringComparison.Ordinal);
        Assert.Contains("man-in-the-middle", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, System.Text.RegularExpressions.Regex.Count(ssh.Log, System.Text.RegularExpressions.Regex.Escape(fingerprint)));
    }

    [Fact]
    public async Task Scan_CapturesTheHostKey_WithoutLoggingIn()
    {
        var keys = await HostKeyScanner.ScanAsync(ssh.Host, ssh.Port, TestContext.Current.CancellationToken);
        var key = Assert.Single(keys);
        Assert.Equal(RemoteSession.ServerKey(ssh), key);
        Assert.Equal(await ssh.HostKeyFingerprintAsync(), key.Fingerprint);
    }

    private static async Task<SshConnectionException> ConnectFailureAsync(SshNetEndpoint endpoint)
    {
        await using var connection = new SshNetConnection(endpoint);
        return await Assert.ThrowsAnyAsync<SshConnectionException>(() => new SshNetShell(connection).RunAsync("true", TestContext.Current.CancellationToken));
    }
}
