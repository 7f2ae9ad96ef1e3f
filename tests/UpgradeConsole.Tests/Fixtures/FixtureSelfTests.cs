using Npgsql;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>The rig itself: later tests rely on these servers being real and strict.</summary>
public sealed class FixtureSelfTests(SshServer ssh, PostgresServer postgres)
{
    [Fact]
    public async Task Sshd_WithPinnedHostKey_RunsCommandsAsTheTestUser()
    {
        var result = await ssh.RunAsync("id -un; printf '%s' \"$SSH_CONNECTION\"");
        var lines = result.StandardOutput.Split('\n');
        Assert.Equal(ssh.User, lines[0]);
        Assert.StartsWith("127.0.0.1 ", lines[1], StringComparison.Ordinal);
        if (ProcessRunner.IsRoot)
        {
            Assert.NotEqual("root", lines[0]);
        }
    }

    [Fact]
    public async Task Sshd_WithAnotherHostKeyPinned_IsRefused()
    {
        var dir = Directory.CreateTempSubdirectory("uc-kh-").FullName;
        try
        {
            var otherKey = Path.Combine(dir, "other");
            await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", otherKey]);
            var knownHosts = Path.Combine(dir, "known_hosts");
            await File.WriteAllTextAsync(knownHosts, $"[{ssh.Host}]:{ssh.Port} {await File.ReadAllTextAsync(otherKey + ".pub")}", TestContext.Current.CancellationToken);

            var changed = await ssh.RunAsync("true", check: false, knownHosts: knownHosts);
            Assert.Equal(255, changed.ExitCode);
            Assert.Contains("Host key verification failed", changed.StandardError, StringComparison.Ordinal);

            var unknown = await ssh.RunAsync("true", check: false, knownHosts: Path.Combine(dir, "empty"));
            Assert.Equal(255, unknown.ExitCode);
            Assert.Contains("Host key verification failed", unknown.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Postgres_IsARealServerOnLoopbackWithPasswords()
    {
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync(TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT current_setting('server_version_num')::int / 10000, current_setting('listen_addresses'), current_setting('password_encryption')", conn);
        await using var reader = await cmd.ExecuteReaderAsync(TestContext.Current.CancellationToken);
        Assert.True(await reader.ReadAsync(TestContext.Current.CancellationToken));
        Assert.Equal(postgres.MajorVersion, reader.GetInt32(0));
        Assert.Equal("127.0.0.1", reader.GetString(1));
        Assert.Equal("scram-sha-256", reader.GetString(2));

        var wrong = new NpgsqlConnectionStringBuilder(postgres.AdminConnectionString) { Password = "wrong" };
        await using var refused = new NpgsqlConnection(wrong.ConnectionString);
        await Assert.ThrowsAsync<PostgresException>(() => refused.OpenAsync(TestContext.Current.CancellationToken));
    }
}
