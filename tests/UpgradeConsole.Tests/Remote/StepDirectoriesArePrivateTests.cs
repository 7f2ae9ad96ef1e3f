using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Remote;

/// <summary>
/// Nothing the engine runs can be planted by another user of the target: step directories and files
/// are created owner-only, and a runs directory (or run directory) another user owns or may write to
/// is refused before anything is written or started there.
/// </summary>
public sealed class StepDirectoriesArePrivateTests(SshServer ssh) : IAsyncLifetime
{
    private RemoteSession _remote = default!;
    private readonly string _shared = "/tmp/uc-shared-" + Guid.NewGuid().ToString("N")[..10];

    public ValueTask InitializeAsync()
    {
        _remote = new RemoteSession(ssh);
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task AStep_IsWrittenOwnerOnly_WhateverTheUmask()
    {
        var (_, status) = await _remote.RunAsync(_remote.NewStep("modes", "echo hi"));
        Assert.Equal(0, status.ExitCode);
        var dir = $"~/.upgradeconsole-tests/runs/{_remote.RunId}/modes";
        var modes = (await ssh.RunAsync($"umask 022; cd {dir} && stat -c '%n %a' . .. runner script log")).StandardOutput;
        Assert.Equal([". 700", ".. 700", "runner 600", "script 600", "log 600"], modes.Trim().Split('\n'));
    }

    [Fact]
    public async Task ARunsDirectoryOthersMayWrite_IsRefused_AndNothingRuns()
    {
        await ssh.RunAsync($"mkdir -m 1777 {_shared}");
        var step = _remote.NewStep("planted", $"touch {_shared}.ran") with { Location = new StepLocation(_shared, _remote.RunId, "planted") };
        var refused = await Assert.ThrowsAsync<RemoteCommandException>(() => _remote.RunAsync(step));
        Assert.Contains("refusing to start", refused.Message, StringComparison.Ordinal);
        Assert.Equal("absent", (await ssh.RunAsync($"test -e {_shared}.ran && echo present || echo absent")).StandardOutput.Trim());
        Assert.Equal("absent", (await ssh.RunAsync($"test -e {_shared}/{_remote.RunId}/planted/.started && echo present || echo absent")).StandardOutput.Trim());
    }

    [Fact]
    public async Task ARunDirectoryAnotherUserOwns_IsRefused_AndWhatTheyPlantedNeverRuns()
    {
        Assert.True(ProcessRunner.IsRoot, "This test needs the fixture's second account; run the suite as root (./scripts/test.sh in CI).");
        // Another account made the run directory first (0755, theirs) and left a step directory with a runner in it.
        var runs = $"~/.upgradeconsole-tests/runs-{_remote.RunId}";
        // The other account must be able to reach the directory: the home and the tests' directory above it, which
        // another test may have made private (0700) first, are opened to traversal (0711) for the scenario.
        await ssh.RunAsync($"mkdir -p {runs} && chmod 755 {runs} && chmod 711 ~ ~/.upgradeconsole-tests");
        var home = (await ssh.RunAsync("echo $HOME")).StandardOutput.Trim();
        var absoluteRuns = runs.Replace("~", home, StringComparison.Ordinal);
        await ssh.RunAsync($"chmod 777 {runs} && sudo -n -u {SshServer.ServiceUser} sh -c 'mkdir -m 755 {absoluteRuns}/{_remote.RunId} && mkdir -m 777 {absoluteRuns}/{_remote.RunId}/s1 && printf \"touch {absoluteRuns}.ran\\n\" > {absoluteRuns}/{_remote.RunId}/s1/runner' && chmod 755 {runs}");
        var step = _remote.NewStep("s1", "echo mine") with { Location = new StepLocation(absoluteRuns, _remote.RunId, "s1") };
        var refused = await Assert.ThrowsAsync<RemoteCommandException>(() => _remote.RunAsync(step));
        Assert.Contains("refusing to start", refused.Message, StringComparison.Ordinal);
        Assert.Equal("absent", (await ssh.RunAsync($"test -e {absoluteRuns}.ran && echo present || echo absent")).StandardOutput.Trim());
        await ssh.RunAsync($"sudo -n -u {SshServer.ServiceUser} rm -rf {absoluteRuns}/{_remote.RunId}; rm -rf {runs}", check: false);
    }

    [Fact]
    public async Task ARunDirectorySwappedForAnotherUsersBetweenTwoSteps_IsRefused_ThoughTheFirstStepFoundItPrivate()
    {
        Assert.True(ProcessRunner.IsRoot, "This test needs the fixture's second account; run the suite as root (./scripts/test.sh in CI).");
        // Later steps of a run over the same connection skip the write-bit check of the run directories (a process
        // on the target); the owner check stays, so a directory someone else put in their place is still refused.
        var runs = $"~/.upgradeconsole-tests/runs-{_remote.RunId}";
        // The other account must be able to reach the directory: the home and the tests' directory above it, which
        // another test may have made private (0700) first, are opened to traversal (0711) for the scenario.
        await ssh.RunAsync($"mkdir -p {runs} && chmod 755 {runs} && chmod 711 ~ ~/.upgradeconsole-tests");
        var home = (await ssh.RunAsync("echo $HOME")).StandardOutput.Trim();
        var absoluteRuns = runs.Replace("~", home, StringComparison.Ordinal);
        var first = _remote.NewStep("s1", "echo mine") with { Location = new StepLocation(absoluteRuns, _remote.RunId, "s1") };
        var (_, status) = await _remote.RunAsync(first);
        Assert.Equal(0, status.ExitCode);

        await ssh.RunAsync($"mv {runs}/{_remote.RunId} {runs}/{_remote.RunId}.old && chmod 777 {runs} && sudo -n -u {SshServer.ServiceUser} sh -c 'mkdir -m 755 {absoluteRuns}/{_remote.RunId} && mkdir -m 777 {absoluteRuns}/{_remote.RunId}/s2 && printf \"touch {absoluteRuns}.ran\\n\" > {absoluteRuns}/{_remote.RunId}/s2/runner' && chmod 755 {runs}");
        var second = _remote.NewStep("s2", "echo mine again") with { Location = new StepLocation(absoluteRuns, _remote.RunId, "s2") };
        var refused = await Assert.ThrowsAsync<RemoteCommandException>(() => _remote.RunAsync(second));
        Assert.Contains("refusing to start", refused.Message, StringComparison.Ordinal);
        Assert.Equal("absent", (await ssh.RunAsync($"test -e {absoluteRuns}.ran && echo present || echo absent")).StandardOutput.Trim());
        await ssh.RunAsync($"sudo -n -u {SshServer.ServiceUser} rm -rf {absoluteRuns}/{_remote.RunId}; rm -rf {runs}", check: false);
    }

    public async ValueTask DisposeAsync()
    {
        await ssh.RunAsync($"rm -rf {_shared} {_shared}.ran", check: false);
        await _remote.DisposeAsync();
    }
}
