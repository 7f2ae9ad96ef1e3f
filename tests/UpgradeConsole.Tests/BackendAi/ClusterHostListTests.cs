using UpgradeConsole.Core.BackendAi;

namespace UpgradeConsole.Tests.BackendAi;

/// <summary>The host list an Admin pastes for a Backend.AI cluster: one host a line, a bad line refuses the whole list.</summary>
public sealed class ClusterHostListTests
{
    private const string Fingerprint = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

    [Fact]
    public void TryParse_AListOfHosts_ReadsRolesLoginAndPorts()
    {
        var ok = ClusterHostList.TryParse("""
            # the manager first
            manager,storage-proxy ops@mgr.example.org:2201

            webserver  ops@10.0.0.3
            agent	bai_1@gpu-01.example.org:22 SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s
            agent ops@[2001:db8::7]:2222
            """, out var hosts, out var error);

        Assert.True(ok, error);
        Assert.Equal(4, hosts.Count);
        Assert.Equal(["manager", "storage-proxy"], hosts[0].Roles);
        Assert.Equal(("ops", "mgr.example.org", 2201, 2), (hosts[0].User, hosts[0].Host, hosts[0].Port, hosts[0].LineNumber));
        Assert.Equal((22, "10.0.0.3:22"), (hosts[1].Port, hosts[1].Address));
        Assert.Equal(("bai_1", Fingerprint), (hosts[2].User, hosts[2].Fingerprint));
        Assert.Equal(("2001:db8::7", 2222, "[2001:db8::7]:2222"), (hosts[3].Host, hosts[3].Port, hosts[3].Address));
    }

    [Fact]
    public void TryParse_RolesInAnyOrderAndCase_AreNormalised()
    {
        Assert.True(ClusterHostList.TryParse("Storage-Proxy,MANAGER,manager ops@m:22", out var hosts, out _));
        Assert.Equal(["manager", "storage-proxy"], hosts[0].Roles);
    }

    [Theory]
    [InlineData("agent ops@gpu-01:22\ngpu ops@gpu-02:22", "Line 2 (\"gpu ops@gpu-02:22\"): 'gpu' is not a Backend.AI role")]
    [InlineData("agent gpu-01:22", "Line 1 (\"agent gpu-01:22\"): 'gpu-01:22' has no user")]
    [InlineData("agent ops@gpu-01:0", "Line 1 (\"agent ops@gpu-01:0\"): '0' is not a port (1–65535)")]
    [InlineData("agent ops@gpu-01:70000", "'70000' is not a port")]
    [InlineData("agent ops@gpu-01:ssh", "'ssh' is not a port")]
    [InlineData("agent ops@", "no host after '@'")]
    [InlineData("agent", "Line 1 (\"agent\"): expected 'role user@host:port'")]
    [InlineData("agent ops@gpu-01 extra words here", "expected 'role user@host:port'")]
    [InlineData("agent ops@gpu-01 SHA256:short", "'SHA256:short' is not a host key fingerprint")]
    [InlineData("agent ops@2001:db8::1", "an IPv6 address goes in brackets")]
    [InlineData("agent ops@[2001:db8::1", "opens '[' without closing it")]
    [InlineData("agent ops@[not-v6]:22", "'not-v6' is not an IPv6 address")]
    [InlineData("agent -oProxyCommand=x@gpu-01", "is not a user name")]
    [InlineData("agent ops@-oProxyCommand=touch", "is not a host name or address")]
    [InlineData("agent ops@gpu-01;reboot", "'gpu-01;reboot' is not a host name or address")]
    [InlineData("agent ops@$(reboot):22", "is not a host name or address")]
    [InlineData("agent ops@gpu-01:22\nagent root@GPU-01:22", "Line 2 (\"agent root@GPU-01:22\"): GPU-01:22 is already on line 1")]
    [InlineData("", "No host given")]
    [InlineData("# only a comment\n\n", "No host given")]
    public void TryParse_ABadLine_RefusesTheListNamingTheLine(string text, string expected)
    {
        Assert.False(ClusterHostList.TryParse(text, out var hosts, out var error));
        Assert.Empty(hosts);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error!);
    }

    [Fact]
    public void TryParse_AVeryLongLine_IsShortenedInTheError()
    {
        var line = "agent ops@" + new string('a', 300) + ";x";
        Assert.False(ClusterHostList.TryParse(line, out _, out var error));
        Assert.True(error!.Length < 250, error);
        Assert.StartsWith("Line 1 (\"agent ops@aaa", error, StringComparison.Ordinal);
    }

    [Fact]
    public void TryParse_TwoHundredAgents_AreRead()
    {
        var text = string.Join('\n', Enumerable.Range(1, 200).Select(i => $"agent ops@gpu-{i:000}.example.org:22"));
        Assert.True(ClusterHostList.TryParse(text, out var hosts, out var error), error);
        Assert.Equal(200, hosts.Count);
        Assert.Equal(200, hosts[^1].LineNumber);
    }

    [Fact]
    public void Roles_PackageAndConfig_AreTheComponentsOwn()
    {
        Assert.Equal("backend.ai-storage-proxy", ClusterRoles.Package("storage-proxy"));
        Assert.Equal("agent.toml", ClusterRoles.ConfigFile("agent"));
        Assert.Equal("webserver.conf", ClusterRoles.ConfigFile("webserver"));
    }

    [Fact]
    public void VersionSpread_OneHostBehind_IsMarkedAndTheMajorityIsTheClusters()
    {
        var spread = VersionSpread.Of(["23.09.10", "23.09.10", "23.09.9", "23.09.10", null]);
        Assert.False(spread.Uniform);
        Assert.Equal("23.09.10", spread.Majority);
        Assert.True(spread.Differs("23.09.9"));
        Assert.True(spread.Differs(null));
        Assert.False(spread.Differs("23.09.10"));
        Assert.Equal("2 versions: 23.09.10 on 3 hosts, 23.09.9 on 1 host", spread.Summary);
        Assert.Equal("one version everywhere: 24.03.0", VersionSpread.Of(["24.03.0", "24.03.0"]).Summary);
    }

    [Fact]
    public void Discovery_Parse_ReadsVersionsServiceAgentAndDatabase()
    {
        var output = """
            @@ucbai {"python": "3.11.2", "packages": {"backend.ai-agent": "23.9.9"}, "problems": [], "agent_id": "i-agent05"}
            @@ucbai service 3 inactive
            """;
        var found = ClusterDiscovery.Parse(output, ["agent"]);
        Assert.Equal("23.09.9", found.Version);
        Assert.False(found.ServiceRunning);
        Assert.Equal("inactive", found.ServiceOutput);
        Assert.Equal("i-agent05", found.AgentId);
        Assert.Empty(found.Problems);

        var manager = ClusterDiscovery.Parse("""
            @@ucbai {"python": "3.11.2", "packages": {"backend.ai-manager": "23.9.10", "backend.ai-storage-proxy": null}, "problems": [], "db": {"host": "db", "port": 5432, "name": "backend", "user": "postgres", "password": "pw"}}
            @@ucbai service 0 active
            """, ["manager", "storage-proxy"]);
        Assert.Equal(("db", 5432, "backend", "postgres", "pw"), (manager.Database!.Host, manager.Database.Port, manager.Database.Name, manager.Database.User, manager.Database.Password));
        Assert.Contains("backend.ai-storage-proxy is not installed in this host's Python environment", manager.Problems);
        Assert.DoesNotContain("pw", System.Text.Json.JsonSerializer.Serialize(manager), StringComparison.Ordinal);
    }

    [Fact]
    public void Discovery_Script_QuotesPathsAndRoles()
    {
        var script = ClusterDiscovery.Script(new ClusterHostSettings(["agent"], "/opt/bai $(reboot)/venv", "~/cfg'x/agent.toml", "systemctl is-active backendai-agent"));
        Assert.Contains("py='/opt/bai $(reboot)/venv/bin/python'", script, StringComparison.Ordinal);
        Assert.Contains("\"$HOME\"/'cfg'", script, StringComparison.Ordinal);
    }
}
