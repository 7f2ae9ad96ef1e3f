using System.Text;
using Npgsql;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Remote;

/// <summary>The contract suite, over the system OpenSSH client.</summary>
public sealed class RemoteShellOverOpenSshTests(SshServer ssh, PostgresServer postgres) : RemoteShellContract(ssh, postgres, SshTransport.OpenSsh);

/// <summary>The contract suite, over SSH.NET.</summary>
public sealed class RemoteShellOverSshNetTests(SshServer ssh, PostgresServer postgres) : RemoteShellContract(ssh, postgres, SshTransport.SshNet);

/// <summary>
/// The contract suite with every step started through a shell command of its own (what a target without python3 gets):
/// the classes above start and follow steps through the connection's step helper.
/// </summary>
public sealed class RemoteShellWithoutTheStepHelperTests(SshServer ssh, PostgresServer postgres) : RemoteShellContract(ssh, postgres, SshTransport.SshNet, stepHelper: false);

/// <summary>
/// What every <see cref="IRemoteShell"/> must do, against the real sshd: detached steps, byte-offset
/// logs, reattach after a cut link, cancel and timeouts, sudo, quoting, host keys, forwarding.
/// Run once per transport by the two classes above.
/// </summary>
public abstract class RemoteShellContract(SshServer ssh, PostgresServer postgres, SshTransport transport, bool stepHelper = true) : IAsyncLifetime
{
    private RemoteSession _remote = default!;

    public ValueTask InitializeAsync()
    {
        _remote = new RemoteSession(ssh, new RemoteEngineOptions { CancelGrace = TimeSpan.FromSeconds(2), MaxLineBytes = 1024, UseStepHelper = stepHelper }, transport);
        return ValueTask.CompletedTask;
    }

    [Theory]
    [InlineData("echo done", 0)]
    [InlineData("echo failing; exit 1", 1)]
    [InlineData("exit 42", 42)]
    [InlineData("echo before; kill -KILL $$", 137)]
    public async Task Step_ExitCode_IsReported(string script, int expected)
    {
        var (_, status) = await _remote.RunAsync(_remote.NewStep("exit", script));
        Assert.Equal(RemoteStepState.Exited, status.State);
        Assert.Equal(expected, status.ExitCode);
    }

    [Fact]
    public async Task Stderr_IsMergedInOrder_WithColoursAndUtf8Kept()
    {
        var (lines, _) = await _remote.RunAsync(_remote.NewStep("streams", """
            echo out1
            echo err1 >&2
            echo out2
            printf '\033[31mred\033[0m plain\n'
            echo 'ünïcödé ✓ 日本'
            printf '\377\376ok\n'
            printf 'crlf\r\n'
            printf 'no newline at the end'
            """));

        Assert.Equal(
            ["out1", "err1", "out2", "\u001b[31mred\u001b[0m plain", "ünïcödé ✓ 日本", "\uFFFD\uFFFDok", "crlf", "no newline at the end"],
            lines.Select(l => l.Text));
        AssertContiguous(lines, 0);
    }

    [Fact]
    public async Task LongLine_IsSplitIntoPieces_NeverInsideACharacter()
    {
        // 3000 bytes of 'é' (2 bytes each) with a 1024-byte limit.
        var (lines, status) = await _remote.RunAsync(_remote.NewStep("long", "for i in $(seq 1 1500); do printf 'é'; done; echo; echo next"));
        Assert.Equal(0, status.ExitCode);
        Assert.Equal("next", lines[^1].Text);
        var pieces = lines[..^1];
        Assert.True(pieces.Count >= 3, $"{pieces.Count} pieces");
        Assert.All(pieces, p => Assert.True(Encoding.UTF8.GetByteCount(p.Text) <= 1024));
        Assert.Equal(new string('é', 1500), string.Concat(pieces.Select(p => p.Text)));
        Assert.DoesNotContain(pieces, p => p.Text.Contains('\uFFFD', StringComparison.Ordinal));
        AssertContiguous(lines, 0);
    }

    [Fact]
    public async Task MillionLines_AreDeliveredExactlyOnceInOrder()
    {
        var expected = 1;
        var count = 0;
        await _remote.Engine.StartAsync(_remote.NewStep("million", "seq 1 1000000"), TestContext.Current.CancellationToken);
        long next = 0;
        await foreach (var line in _remote.Engine.FollowAsync(_remote.Step("million"), 0, TestContext.Current.CancellationToken))
        {
            Assert.Equal(next, line.Offset);
            next = line.NextOffset;
            if (line.Text != expected.ToString(System.Globalization.CultureInfo.InvariantCulture))
            {
                Assert.Fail($"line {count}: expected {expected}, got '{line.Text}'");
            }

            expected++;
            count++;
        }

        Assert.Equal(1_000_000, count);
        var status = await _remote.Engine.GetStatusAsync(_remote.Step("million"), TestContext.Current.CancellationToken);
        Assert.Equal(0, status.ExitCode);
        Assert.Equal(status.LogSize, next);
    }

    [Fact]
    public async Task CuttingTheLink_WhileFollowing_LosesAndRepeatsNothing()
    {
        var step = _remote.NewStep("dropped", "for i in $(seq 1 400); do echo \"line $i\"; sleep 0.005; done");
        await _remote.Engine.StartAsync(step, TestContext.Current.CancellationToken);
        var texts = new List<string>();
        var killed = 0;
        await foreach (var line in _remote.Engine.FollowAsync(step.Location, 0, TestContext.Current.CancellationToken))
        {
            texts.Add(line.Text);
            if (texts.Count is 50 or 200)
            {
                // Every TCP connection of this session, reset under the client (ControlMaster or SshClient).
                Assert.True(_remote.CutLink() > 0);
                killed++;
            }
        }

        Assert.Equal(2, killed);
        Assert.Equal(Enumerable.Range(1, 400).Select(i => $"line {i}"), texts);
    }

    [Fact]
    public async Task RunAsync_LinkCutMidStep_ReattachesWithoutLossOrRepeat()
    {
        var texts = new List<string>();
        var status = await _remote.Engine.RunAsync(_remote.NewStep("run-dropped", "for i in $(seq 1 300); do echo \"line $i\"; sleep 0.005; done; exit 3"), async line =>
        {
            texts.Add(line.Text);
            if (texts.Count == 100)
            {
                _remote.CutLink();
            }

            await Task.CompletedTask;
        }, TestContext.Current.CancellationToken);

        Assert.Equal(3, status.ExitCode);
        Assert.Equal(Enumerable.Range(1, 300).Select(i => $"line {i}"), texts);
    }

    [Fact]
    public async Task NewEngineInstance_ReattachesAtTheStoredOffset()
    {
        var step = _remote.NewStep("reattach", "for i in $(seq 1 300); do echo \"line $i\"; sleep 0.005; done; exit 7");
        await _remote.Engine.StartAsync(step, TestContext.Current.CancellationToken);

        var first = new List<RemoteLogLine>();
        await foreach (var line in _remote.Engine.FollowAsync(step.Location, 0, TestContext.Current.CancellationToken))
        {
            first.Add(line);
            if (first.Count == 100)
            {
                break; // the dashboard "restarts": this engine is gone
            }
        }

        // A different shell and engine, as after a restart, with only (target, run, step, offset).
        await using var restarted = new RemoteSession(ssh, transport: transport);
        var engine = restarted.Engine;
        var rest = new List<RemoteLogLine>();
        await foreach (var line in engine.FollowAsync(step.Location, first[^1].NextOffset, TestContext.Current.CancellationToken))
        {
            rest.Add(line);
        }

        Assert.Equal(Enumerable.Range(1, 300).Select(i => $"line {i}"), first.Concat(rest).Select(l => l.Text));
        AssertContiguous([.. first, .. rest], 0);
        var status = await engine.GetStatusAsync(step.Location, TestContext.Current.CancellationToken);
        Assert.Equal(7, status.ExitCode);

        // Reattaching after the end gives the remaining nothing and the same exit code.
        var after = new List<RemoteLogLine>();
        await foreach (var line in engine.FollowAsync(step.Location, rest[^1].NextOffset, TestContext.Current.CancellationToken))
        {
            after.Add(line);
        }

        Assert.Empty(after);
    }

    [Fact]
    public async Task CancellingWhileASilentStepPrintsNothing_EndsTheFollow_AndTheStepCarriesOn()
    {
        // The step prints a line, then waits for a file without printing: the reader waits for data when cancelled.
        var step = _remote.NewStep("silent", "echo waiting; while [ ! -e \"$HOME/.upgradeconsole-tests/runs/$RUN/go\" ]; do sleep 0.05; done; echo went",
            new Dictionary<string, string> { ["RUN"] = _remote.RunId });
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var first = new TaskCompletionSource();
        var running = _remote.Engine.RunAsync(step, _ =>
        {
            first.TrySetResult();
            return ValueTask.CompletedTask;
        }, stopping.Token);
        await first.Task.WaitAsync(TestContext.Current.CancellationToken);

        await stopping.CancelAsync();
        // Ends as cancelled (the test's own token bounds the wait: a reader blind to the cancellation would hang here).
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken));

        await ssh.RunAsync($"touch ~/.upgradeconsole-tests/runs/{_remote.RunId}/go");
        var rest = new List<RemoteLogLine>();
        await foreach (var line in _remote.Engine.FollowAsync(step.Location, 0, TestContext.Current.CancellationToken))
        {
            rest.Add(line);
        }

        Assert.Equal(["waiting", "went"], rest.Select(l => l.Text));
        Assert.Equal(0, (await _remote.Engine.GetStatusAsync(step.Location, TestContext.Current.CancellationToken)).ExitCode);
    }

    [Fact]
    public async Task Start_Twice_IsRefused_AndTheScriptRunsOnce()
    {
        var step = _remote.NewStep("once", "echo ran >> \"$HOME/.upgradeconsole-tests/runs/$RUN/count\"", new Dictionary<string, string> { ["RUN"] = _remote.RunId });
        var (_, status) = await _remote.RunAsync(step);
        Assert.Equal(0, status.ExitCode);

        await Assert.ThrowsAsync<StepAlreadyStartedException>(() => _remote.Engine.StartAsync(step, TestContext.Current.CancellationToken));
        var count = await ssh.RunAsync($"cat ~/.upgradeconsole-tests/runs/{_remote.RunId}/count");
        Assert.Equal("ran\n", count.StandardOutput);
    }

    [Fact]
    public async Task Cancel_KillsTheWholeProcessGroupOnTheTarget()
    {
        var step = _remote.NewStep("cancel", "sleep 300 & sleep 301 & echo started; wait");
        var pid = await _remote.Engine.StartAsync(step, TestContext.Current.CancellationToken);
        await WaitForLineAsync(step.Location, "started");
        var before = await ssh.RunAsync($"pgrep -g {pid} | wc -l");
        Assert.True(int.Parse(before.StandardOutput.Trim(), System.Globalization.CultureInfo.InvariantCulture) >= 3, before.StandardOutput);

        await _remote.Engine.CancelAsync(step.Location, TestContext.Current.CancellationToken);

        var status = await _remote.Engine.GetStatusAsync(step.Location, TestContext.Current.CancellationToken);
        Assert.Equal(RemoteStepState.Exited, status.State);
        Assert.True(status.Cancelled);
        Assert.Equal(143, status.ExitCode);
        Assert.Equal("", await LiveProcessesInGroupAsync(pid));
    }

    [Fact]
    public async Task Cancel_OfAStepIgnoringTerm_EndsWithKill()
    {
        var step = _remote.NewStep("stubborn", "trap '' TERM; echo started; sleep 300 & wait; sleep 300");
        var pid = await _remote.Engine.StartAsync(step, TestContext.Current.CancellationToken);
        await WaitForLineAsync(step.Location, "started");
        await _remote.Engine.CancelAsync(step.Location, TestContext.Current.CancellationToken);

        var status = await _remote.Engine.GetStatusAsync(step.Location, TestContext.Current.CancellationToken);
        Assert.Equal(137, status.ExitCode);
        Assert.Equal("", await LiveProcessesInGroupAsync(pid));
    }

    [Fact]
    public async Task Timeout_StopsTheStep_With124()
    {
        var (lines, status) = await _remote.RunAsync(_remote.NewStep("slow", "echo begin; sleep 60; echo never", timeout: TimeSpan.FromSeconds(2)));
        if (status.ExitCode != 124)
        {
            await Task.Delay(500);
            var dir = _remote.Step("slow").ShellWord;
            var debug = await ssh.RunAsync($"cd {dir} && ls -la && echo --- && cat log && echo --- && cat exit pid 2>&1; ps -ef | grep -v grep | grep slow", check: false);
            Assert.Fail($"status {status}; later {await _remote.Engine.GetStatusAsync(_remote.Step("slow"), TestContext.Current.CancellationToken)}\n{string.Join("\n", lines.Select(l => l.Text))}\n{debug.StandardOutput}{debug.StandardError}");
        }

        Assert.Equal(124, status.ExitCode);
        Assert.True(status.TimedOut);
        Assert.Contains(lines, l => l.Text.Contains("ran longer than 2s", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Text == "never");
    }

    [Fact]
    public async Task FollowingAStepWhoseRunnerNeverWroteItsPid_EndsInsteadOfWaitingForever()
    {
        // A runner that died (or never came up) between the start marker and its pid file: the
        // follower must not wait on "no pid" (before the fix it followed pid 1, for ever).
        var location = _remote.Step("no-pid");
        var made = await ssh.RunAsync($"d={location.ShellWord}; mkdir -p \"$d\" && printf 'one\\ntwo\\n' > \"$d/log\" && touch -d '-2 minutes' \"$d/.started\"");
        Assert.Equal(0, made.ExitCode);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        var lines = new List<string>();
        await foreach (var line in _remote.Engine.FollowAsync(location, 0, timeout.Token))
        {
            lines.Add(line.Text);
        }

        Assert.Equal(["one", "two"], lines);
        Assert.Equal(RemoteStepState.Lost, (await _remote.Engine.GetStatusAsync(location, TestContext.Current.CancellationToken)).State);
    }

    [Fact]
    public async Task StepKilledOutsideTheEngine_IsLost_NotGuessed()
    {
        var step = _remote.NewStep("lost", "echo started; sleep 300");
        var pid = await _remote.Engine.StartAsync(step, TestContext.Current.CancellationToken);
        await WaitForLineAsync(step.Location, "started");
        await ssh.RunAsync($"kill -KILL -- -{pid}");

        var status = await _remote.Engine.GetStatusAsync(step.Location, TestContext.Current.CancellationToken);
        Assert.Equal(RemoteStepState.Lost, status.State);
        Assert.Null(status.ExitCode);
    }

    [Fact]
    public async Task Environment_IsPassedLiterally_WithoutAnyExpansion()
    {
        var marker = $"/tmp/uc-pwned-{_remote.RunId}";
        var values = new Dictionary<string, string>
        {
            ["A"] = $"$(touch {marker})",
            ["B"] = $"`touch {marker}`; echo '\"quoted\"' $HOME ${{HOME}} *",
            ["C"] = "line1\nline2\n\ttab 'single' \"double\" \\backslash",
            ["D"] = "ünï ✓ 日本",
            ["E"] = "",
        };
        var (lines, status) = await _remote.RunAsync(_remote.NewStep("env", "for v in A B C D E; do printf '%s=[%s]\\n' \"$v\" \"${!v}\"; done", values));
        Assert.Equal(0, status.ExitCode);
        var text = string.Join('\n', lines.Select(l => l.Text));
        Assert.Equal(string.Join('\n', values.Select(kv => $"{kv.Key}=[{kv.Value}]")), text);
        var pwned = await ssh.RunAsync($"test -e {marker} && echo yes || echo no");
        Assert.Equal("no", pwned.StandardOutput.Trim());
    }

    [Fact]
    public async Task RunAsUser_RunsTheScriptThroughSudo_WithItsEnvironment()
    {
        Assert.True(ProcessRunner.IsRoot, "The sudo test needs the fixture's service user; run the suite as root (./scripts/test.sh in CI).");
        var step = _remote.NewStep("sudo", "id -un; printf '%s\\n' \"$SECRET_VALUE\"", new Dictionary<string, string> { ["SECRET_VALUE"] = "a b $c 'd'" }) with
        {
            RunAsUser = SshServer.ServiceUser,
        };
        var (lines, status) = await _remote.RunAsync(step);
        Assert.Equal(0, status.ExitCode);
        Assert.Equal([SshServer.ServiceUser, "a b $c 'd'"], lines.Select(l => l.Text));
    }

    [Fact]
    public async Task Status_OfAStepNeverStarted_IsNotStarted_AndFollowingItFails()
    {
        var status = await _remote.Engine.GetStatusAsync(_remote.Step("never"), TestContext.Current.CancellationToken);
        Assert.Equal(RemoteStepState.NotStarted, status.State);
        await Assert.ThrowsAsync<StepNotStartedException>(async () =>
        {
            await foreach (var _ in _remote.Engine.FollowAsync(_remote.Step("never"), 0, TestContext.Current.CancellationToken))
            {
            }
        });
    }

    [Fact]
    public async Task TenThousandRandomStrings_ComeBackByteIdentical_FromTheRemoteShell()
    {
        var random = new Random(20261122);
        var values = Enumerable.Range(0, 10_000).Select(_ => ShellWordsTests.RandomString(random)).ToList();
        values.AddRange(["", "'", "''", "-n", "--", "$HOME", "~", "*", "\n", "a'b\"c`d$e", "$(id)", "`id`", "${IFS}"]);

        for (var batch = 0; batch < values.Count; batch += 1000)
        {
            var chunk = values.Skip(batch).Take(1000).ToList();
            // Each value becomes one printf argument; NUL separates them in the output.
            var script = new StringBuilder();
            foreach (var value in chunk)
            {
                script.Append("printf '%s\\0' ").Append(ShellWords.Quote(value)).Append('\n');
            }

            var result = await _remote.Shell.RunAsync(script.ToString(), TestContext.Current.CancellationToken);
            Assert.Equal(0, result.ExitCode);
            var returned = ShellWordsTests.SplitNul(result.StandardOutput);
            Assert.Equal(chunk.Count, returned.Count);
            for (var i = 0; i < chunk.Count; i++)
            {
                Assert.True(Encoding.UTF8.GetBytes(chunk[i]).AsSpan().SequenceEqual(returned[i]),
                    $"value {batch + i} came back different: {ShellWordsTests.Escape(chunk[i])} -> {ShellWordsTests.Escape(Encoding.UTF8.GetString(returned[i]))}");
            }
        }
    }

    [Fact]
    public async Task AnotherHostKey_IsRefused_BeforeAnythingRuns()
    {
        // A valid key of the pinned type that is not the server's: what a man in the middle would show.
        var parts = (await File.ReadAllTextAsync(ssh.ClientKeyPath + ".pub", TestContext.Current.CancellationToken)).Split(' ');
        await using var forged = new RemoteSession(ssh, transport: transport, pinnedKey: new HostKey(parts[0], parts[1]));
        var marker = $"/tmp/uc-mitm-{forged.RunId}";

        var refused = await Assert.ThrowsAsync<HostKeyMismatchException>(() => forged.Shell.RunAsync($"touch {marker}", TestContext.Current.CancellationToken));
        Assert.Equal(SshFailure.HostKeyChanged, refused.Failure);
        var steps = await Assert.ThrowsAsync<HostKeyMismatchException>(() => forged.RunAsync(forged.NewStep("mitm", $"touch {marker}")));
        Assert.Equal(SshFailure.HostKeyChanged, steps.Failure);
        Assert.Equal("no", (await ssh.RunAsync($"test -e {marker} && echo yes || echo no")).StandardOutput.Trim());
    }

    [Fact]
    public async Task Forward_ReachesTheTargetsPostgreSql_AndClosesWhenDisposed()
    {
        var forward = await _remote.Shell.ForwardAsync("127.0.0.1", postgres.Port, TestContext.Current.CancellationToken);
        var connection = new NpgsqlConnectionStringBuilder(postgres.AdminConnectionString) { Host = forward.Host, Port = forward.Port, Pooling = false, Timeout = 5 }.ConnectionString;
        await using (var db = new NpgsqlConnection(connection))
        {
            await db.OpenAsync(TestContext.Current.CancellationToken);
            await using var command = new NpgsqlCommand("select current_setting('port')", db);
            Assert.Equal(postgres.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), await command.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        }

        await forward.DisposeAsync();
        await using var closed = new NpgsqlConnection(connection);
        await Assert.ThrowsAnyAsync<Exception>(() => closed.OpenAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Forward_ToASocketDirectory_ReachesTheTargetsPostgreSql()
    {
        await using var forward = await _remote.Shell.ForwardAsync(postgres.SocketDir, postgres.Port, TestContext.Current.CancellationToken);
        var connection = new NpgsqlConnectionStringBuilder(postgres.AdminConnectionString) { Host = forward.Host, Port = forward.Port, Pooling = false, Timeout = 5 }.ConnectionString;
        for (var i = 0; i < 3; i++)
        {
            await using var db = new NpgsqlConnection(connection);
            await db.OpenAsync(TestContext.Current.CancellationToken);
            // Over the socket, PostgreSQL sees no client address.
            await using var command = new NpgsqlCommand("select inet_client_addr() is null, count(*) from generate_series(1, 100000)", db);
            await using var reader = await command.ExecuteReaderAsync(TestContext.Current.CancellationToken);
            Assert.True(await reader.ReadAsync(TestContext.Current.CancellationToken));
            Assert.True(reader.GetBoolean(0));
            Assert.Equal(100000, reader.GetInt64(1));
        }
    }

    private async Task WaitForLineAsync(StepLocation location, string text)
    {
        for (var i = 0; i < 100; i++)
        {
            var log = await ssh.RunAsync($"cat {location.RunsDirectory}/{location.RunId}/{location.StepId}/log 2>/dev/null || true");
            if (log.StandardOutput.Contains(text, StringComparison.Ordinal))
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"'{text}' never appeared in {location}");
    }

    /// <summary>Processes of the group that are not zombies (an exited child waits for init to reap it).</summary>
    private async Task<string> LiveProcessesInGroupAsync(int pgid)
    {
        var live = "";
        for (var i = 0; i < 50; i++)
        {
            live = (await ssh.RunAsync($"ps -o pid=,stat=,args= -g {pgid} | awk '$2 !~ /^Z/' || true")).StandardOutput.Trim();
            if (live.Length == 0)
            {
                return live;
            }

            await Task.Delay(100);
        }

        return live;
    }

    private static void AssertContiguous(IReadOnlyList<RemoteLogLine> lines, long start)
    {
        var expected = start;
        foreach (var line in lines)
        {
            Assert.Equal(expected, line.Offset);
            Assert.True(line.NextOffset > line.Offset);
            expected = line.NextOffset;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _remote.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}
