using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Tests.Remote;

/// <summary>Host strings never reach a shell: validation, and the OpenSSH jump host without a ProxyCommand (issue 19, finding 9).</summary>
public sealed class SshEndpointTests
{
    [Theory]
    [InlineData("fe80::1%eth0")]
    [InlineData("fe80::1%2")]
    [InlineData("[fe80::1%enp0s31f6]")]
    [InlineData("::1")]
    [InlineData("192.0.2.7")]
    [InlineData("fractal.example.org")]
    public void HostNames_IsValid_AcceptsAddressesAndScopeIdsOfLettersAndDigits(string host) => Assert.True(HostNames.IsValid(host));

    [Theory]
    [InlineData("fe80::1%eth0;touch /tmp/pwned")]
    [InlineData("fe80::1%$(id)")]
    [InlineData("fe80::1%`id`")]
    [InlineData("fe80::1%eth0 -oProxyCommand=id")]
    [InlineData("fe80::1%")]
    [InlineData("192.0.2.7%eth0")]
    [InlineData("-oProxyCommand=id")]
    [InlineData("host;id")]
    public void HostNames_IsValid_RefusesShellMetacharactersAnywhere(string host)
    {
        Assert.False(HostNames.IsValid(host));
        Assert.False(JumpHost.TryParse($"admin@{host}", out _));
    }

    [Fact]
    public void Options_WithAJumpHost_HaveNoProxyCommand_AndNoHostString()
    {
        var jump = new JumpHost("bastion-user", "fe80::1%eth0", 2222, "ssh-ed25519");
        var endpoint = new SshEndpoint
        {
            Host = "10.0.0.5",
            User = "fractal",
            Identity = new SshIdentity.KeyFile("/keys/id_ed25519"),
            KnownHostsFile = "/data/ssh/1/known_hosts",
            ControlPath = "/data/ssh/1/cm",
            Jump = jump,
            ConfigFile = "/data/ssh/1/ssh_config",
        };

        var options = endpoint.Options();
        Assert.DoesNotContain(options, o => o.Contains("ProxyCommand", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(options, o => o.Contains("fe80", StringComparison.Ordinal) || o.Contains("bastion", StringComparison.Ordinal));
        Assert.Equal(["-F", "/data/ssh/1/ssh_config", "-J", SshEndpoint.JumpAlias], options.TakeLast(4));

        // The jump connection fails closed exactly like the target's, from the config file.
        var config = endpoint.JumpConfig();
        Assert.Contains($"Host {SshEndpoint.JumpAlias}\n", config, StringComparison.Ordinal);
        Assert.Contains("HostName fe80::1%%eth0\n", config, StringComparison.Ordinal);
        foreach (var line in new[] { "Port 2222", "User bastion-user", "BatchMode yes", "StrictHostKeyChecking yes", "UserKnownHostsFile \"/data/ssh/1/known_hosts\"", "GlobalKnownHostsFile /dev/null", "HostKeyAlgorithms \"ssh-ed25519\"", "IdentityFile \"/keys/id_ed25519\"", "IdentitiesOnly yes" })
        {
            Assert.Contains("  " + line + "\n", config, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void JumpConfig_RefusesAValueThatCannotBeWrittenSafely()
    {
        var endpoint = new SshEndpoint
        {
            Host = "10.0.0.5",
            User = "fractal",
            Identity = new SshIdentity.KeyFile("/keys/id\"\n  ProxyCommand id"),
            KnownHostsFile = "/data/known_hosts",
            ControlPath = "/data/cm",
            Jump = new JumpHost("u", "bastion", 22),
            ConfigFile = "/data/ssh_config",
        };
        Assert.Throws<ArgumentException>(endpoint.JumpConfig);
    }
}
