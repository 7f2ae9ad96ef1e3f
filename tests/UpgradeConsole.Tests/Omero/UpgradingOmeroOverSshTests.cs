using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Omero;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Omero;

/// <summary>
/// The Core's OMERO phase scripts run as detached remote steps over a real sshd against the OMERO host
/// double: the precheck goes red on a planted problem and green once fixed; the whole runbook takes
/// 5.3.5 to 5.6.3 and moves the database version; the rollback restores the verified dump so the
/// version and every table's row count equal what they were before.
/// </summary>
public sealed class UpgradingOmeroOverSshTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private RemoteSession _remote = default!;
    private OmeroHost _host = default!;

    public async ValueTask InitializeAsync()
    {
        _remote = new RemoteSession(ssh);
        _host = await OmeroHost.CreateAsync(_remote.Shell, postgres);
    }

    public async ValueTask DisposeAsync()
    {
        await _host.DisposeAsync();
        await _remote.DisposeAsync();
    }

    private async Task<OmeroUpgradePlan> PlanAsync()
    {
        var discovery = await DiscoverAsync();
        var target = OmeroReleases.SchemaOf(OmeroHost.NewVersion)!;
        return new OmeroUpgradePlan(_host.Settings, _host.NewReleaseZip, OmeroHost.NewVersion, discovery.DatabaseVersion!,
            OmeroReleases.Path(discovery.DatabaseVersion!, target)!, _remote.RunId, Vacuum: true, OmeroPyMinimum: "5.19.4");
    }

    private async Task<OmeroDiscoveryResult> DiscoverAsync()
    {
        var result = await _remote.Shell.RunAsync(OmeroDiscovery.Script(_host.Settings), TestContext.Current.CancellationToken, TimeSpan.FromMinutes(1));
        Assert.DoesNotContain(OmeroHost.DbPassword, result.Output, StringComparison.Ordinal);
        return OmeroDiscovery.Parse(result.Output);
    }

    private int _attempt;

    private async Task<(int? Exit, string Output)> RunPhaseAsync(OmeroPhase phase) => await RunScriptAsync(phase.Key, phase.Script!, phase.Timeout);

    private async Task<(int? Exit, string Output)> RunScriptAsync(string key, string script, TimeSpan? timeout = null)
    {
        var (lines, status) = await _remote.RunAsync(_remote.NewStep($"{key}-{++_attempt}", script, timeout: timeout ?? TimeSpan.FromMinutes(5)));
        Assert.Equal(RemoteStepState.Exited, status.State);
        return (status.ExitCode, string.Join('\n', lines.Select(l => l.Text)));
    }

    [Fact]
    public async Task Discovery_ReadsTheHost_WithThePasswordMasked()
    {
        var d = await DiscoverAsync();
        Assert.Equal(_host.ServerDirectory, d.OmeroDir);
        Assert.True(d.ServerIsSymlink);
        Assert.EndsWith("/server/OMERO.server-5.3.5-ice36", d.ServerTree, StringComparison.Ordinal);
        Assert.Equal("5.3.5", d.ServerVersion);
        Assert.Equal("5.6.0", d.OmeroPyVersion);
        Assert.Equal(new OmeroDbVersion("OMERO5.3", 0), d.DatabaseVersion);
        Assert.Equal(postgres.Port, d.Database!.Port);
        Assert.True(d.Database.HasPassword);
        Assert.Equal(OmeroDiscovery.Mask, d.Config["omero.db.pass"]);
        Assert.Equal("UTF8", d.Encoding);
        Assert.Equal(postgres.MajorVersion, d.PostgresVersionNum / 10000);
        Assert.True(d.DatabaseSizeBytes > 0 && d.BackupFreeBytes > 0);
        Assert.True(d.BioFormatsCacheBytes >= 4096, $"BioFormatsCache: {d.BioFormatsCacheBytes} bytes");
        Assert.Equal(0, d.AdminStatusExit);
        Assert.Null(d.OmeroCertificatesVersion);
        Assert.Empty(d.Problems);
        Assert.All(OmeroChecks.Evaluate(d, OmeroHost.NewVersion, null, releaseZipPresent: true, null).Where(c => c.Id != "omero.precheck"),
            c => Assert.True(c.Status == CheckStatus.Pass, c.Id + ": " + c.Explanation));
    }

    [Fact]
    public async Task Precheck_RedOnAPlantedProblem_ThenGreenOnceFixed()
    {
        var plan = await PlanAsync();
        var precheck = OmeroRunbook.Phases(plan).Single(p => p.Key == "precheck");
        await _host.ExecuteAsync("INSERT INTO originalfile (id, permissions, name, path, repo, creation_id, group_id, owner_id, update_id) VALUES (5, -88, 'cells.tif', 'ada_2/2017-06//21/10-01-02.123/', 'a6f1f36a-6c0b-4dc6-9a63-5b1c7c3a1f10', 4, 3, 2, 4)");

        var (redExit, red) = await RunPhaseAsync(precheck);
        Assert.Equal(1, redExit);
        var redCheck = OmeroChecks.Precheck(new(plan.Steps[0].PrecheckPath, plan.TargetDb, redExit!.Value, red));
        Assert.Equal(CheckStatus.Fail, redCheck.Status);
        Assert.Contains("duplicate original file paths with IDs {2,5}", redCheck.Explanation, StringComparison.Ordinal);

        await _host.ExecuteAsync("DELETE FROM originalfile WHERE id = 5");
        var (greenExit, green) = await RunPhaseAsync(precheck);
        Assert.True(greenExit == 0, green);
        var greenCheck = OmeroChecks.Precheck(new(plan.Steps[0].PrecheckPath, plan.TargetDb, greenExit!.Value, green));
        Assert.True(greenCheck.Status == CheckStatus.Pass, greenCheck.Explanation);
        Assert.Equal("OMERO5.3__0", await _host.DbVersionAsync());
    }

    private async Task<byte[]> HostFileAsync(string path)
    {
        var (exit, output) = await _host.RunAsync("base64 -w0 -- " + ShellWords.Quote(path));
        Assert.True(exit == 0, output);
        return Convert.FromBase64String(output.Trim());
    }

    [Fact]
    public async Task TheReleasePhase_DownloadsAMissingZip_AndRefusesADamagedOrWrongOne_LeavingNothingBehind()
    {
        var good = await HostFileAsync(_host.NewReleaseZip);
        var wrong = await HostFileAsync(_host.NewReleaseZip.Replace(OmeroHost.NewVersion, OmeroHost.OldVersion, StringComparison.Ordinal));
        using var files = new FileServer();
        var name = $"OMERO.server-{OmeroHost.NewVersion}-ice36.zip";
        files.Put("/good/" + name, good);
        files.Put("/truncated/" + name, good[..(good.Length / 2)]);
        files.Put("/wrong/" + name, wrong);
        // Where the guide puts the new release: beside OMERO.server, not there yet.
        var zip = $"{_host.AbsoluteDirectory}/server/{name}";
        var plan = await PlanAsync() with { ReleaseZip = zip };
        async Task<(int? Exit, string Output)> FetchFromAsync(string? path) =>
            await RunScriptAsync("release", OmeroScripts.FetchRelease(plan with { DownloadUrl = path is null ? null : files.Url(path) }));
        async Task AssertNothingLeftAsync() =>
            Assert.Equal("", (await _host.RunAsync($"ls server/ | grep -F {ShellWords.Quote(name)} || true")).Output.Trim());

        var (none, noneOutput) = await FetchFromAsync(null);
        Assert.True(none == 1, noneOutput);
        Assert.Contains("is not on the host and no download URL is configured", noneOutput, StringComparison.Ordinal);

        var (missing, missingOutput) = await FetchFromAsync("/nowhere/" + name);
        Assert.True(missing == 1, missingOutput);
        Assert.Contains("404", missingOutput, StringComparison.Ordinal);
        Assert.Contains("the download failed", missingOutput, StringComparison.Ordinal);
        await AssertNothingLeftAsync();

        var (truncated, truncatedOutput) = await FetchFromAsync("/truncated/" + name);
        Assert.True(truncated == 1, truncatedOutput);
        Assert.Contains("is not a whole zip", truncatedOutput, StringComparison.Ordinal);
        await AssertNothingLeftAsync();

        var (other, otherOutput) = await FetchFromAsync("/wrong/" + name);
        Assert.True(other == 1, otherOutput);
        Assert.Contains($"does not hold OMERO.server-{OmeroHost.NewVersion}-ice36/", otherOutput, StringComparison.Ordinal);
        await AssertNothingLeftAsync();

        var (fetched, fetchedOutput) = await FetchFromAsync("/good/" + name);
        Assert.True(fetched == 0, fetchedOutput);
        var reported = fetchedOutput.Split('\n').Select(OmeroScripts.ParseRelease).Single(r => r is not null)!.Value;
        Assert.Equal(good.Length, reported.Size);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(good)), reported.Sha256);
        Assert.Equal(good, await HostFileAsync(zip));
        Assert.Equal(1, files.Gets("/good/" + name));

        // Run again (a resumed run): the zip is there, it is checked, not downloaded again.
        var (again, againOutput) = await FetchFromAsync("/good/" + name);
        Assert.True(again == 0, againOutput);
        Assert.Contains("is on the host; checking it", againOutput, StringComparison.Ordinal);
        Assert.Equal(1, files.Gets("/good/" + name));
    }

    [Fact]
    public async Task TheWholeRunbook_Upgrades_ThenTheRollbackRestoresTheDatabaseAsItWas()
    {
        var before = await _host.RowCountsAsync();
        var plan = await PlanAsync();
        OmeroBackupRecord? backup = null;
        foreach (var phase in OmeroRunbook.Phases(plan).Where(p => p.Script is not null))
        {
            var (exit, output) = await RunPhaseAsync(phase);
            Assert.True(exit == 0, $"{phase.Key} exited {exit}:\n{output}");
            backup ??= output.Split('\n').Select(OmeroScripts.ParseBackup).FirstOrDefault(b => b is not null);
            if (phase.Key == "upgrade-sql")
            {
                Assert.Contains("YOU HAVE SUCCESSFULLY UPGRADED YOUR DATABASE TO VERSION OMERO5.4__0", output, StringComparison.Ordinal);
            }
        }

        Assert.NotNull(backup);
        Assert.Equal("OMERO5.4__0", await _host.DbVersionAsync());
        Assert.Equal(15L, await _host.ScalarAsync<long>("SELECT count(*) FROM adminprivilege"));
        var after = await DiscoverAsync();
        Assert.Equal("5.6.3", after.ServerVersion);
        Assert.Equal("5.19.4", after.OmeroPyVersion);
        Assert.Equal("0.3.2", after.OmeroCertificatesVersion);
        Assert.Null(after.BioFormatsCacheBytes);
        Assert.Equal(0, after.AdminStatusExit);
        Assert.Equal("TLS1_2,TLS1_3", after.Config["omero.glacier2.IceSSL.Protocols"]);
        // The facility's own script came along; the release's edited one was listed, not overwritten.
        Assert.Equal(0, (await _host.RunAsync("test -f server/OMERO.server/lib/scripts/facility/Export_To_Archive.py")).Exit);
        Assert.Equal("# Combine_Images of OMERO.server 5.6.3", (await _host.RunAsync("cat server/OMERO.server/lib/scripts/omero/util_scripts/Combine_Images.py")).Output.Trim());

        // Running the SQL phase again (a resumed run) does not run the script twice.
        var (again, againOutput) = await RunPhaseAsync(OmeroRunbook.Phases(plan).Single(p => p.Key == "upgrade-sql"));
        Assert.True(again == 0, againOutput);
        Assert.Contains("the database is already at OMERO5.4__0", againOutput, StringComparison.Ordinal);
        Assert.Equal(3L, await _host.ScalarAsync<long>("SELECT count(*) FROM dbpatch"));

        // Roll back past the point of no return: switch back, restore the verified dump.
        var (switched, switchOutput) = await RunScriptAsync("rollback-switch", OmeroScripts.RollbackSwitch(plan));
        Assert.True(switched == 0, switchOutput);
        var (restored, restoreOutput) = await RunScriptAsync("rollback-restore", OmeroScripts.RestoreDatabase(plan, backup.Path, backup.Sha256));
        Assert.True(restored == 0, restoreOutput);
        Assert.Contains("SHA-256 matches the one recorded at backup", restoreOutput, StringComparison.Ordinal);
        Assert.Equal("OMERO5.3__0", await _host.DbVersionAsync());
        Assert.Equal(before, await _host.RowCountsAsync());

        // The old server starts again on its own schema.
        Assert.Equal("OMERO.server-5.3.5-ice36", (await _host.RunAsync("readlink server/OMERO.server")).Output.Trim());
        var (start, startOutput) = await _host.RunAsync("omero admin start");
        Assert.True(start == 0, startOutput);
        Assert.Equal("5.3.5", (await DiscoverAsync()).ServerVersion);
    }

    [Fact]
    public async Task Restore_RefusesADumpThatChangedSinceItWasVerified()
    {
        var plan = await PlanAsync();
        var (exit, output) = await RunPhaseAsync(OmeroRunbook.Phases(plan).Single(p => p.Key == "backup"));
        Assert.True(exit == 0, output);
        var backup = output.Split('\n').Select(OmeroScripts.ParseBackup).First(b => b is not null)!;
        Assert.Equal(0, (await _host.RunAsync($"printf x >> {ShellWords.Quote(backup.Path)}")).Exit);

        var (refused, refusedOutput) = await RunScriptAsync("restore", OmeroScripts.RestoreDatabase(plan, backup.Path, backup.Sha256));
        Assert.Equal(3, refused);
        Assert.Contains("changed since it was verified", refusedOutput, StringComparison.Ordinal);
        Assert.Equal("OMERO5.3__0", await _host.DbVersionAsync());
    }
}
