using UpgradeConsole.Core.Omero;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Omero;

public sealed class OmeroScriptsTests
{
    /// <summary>Values a person types, each able to break out of a careless script.</summary>
    private const string Hostile = "/srv/o m'e$(touch /tmp/uc-pwned)`id`;\"x\n#";

    private static OmeroUpgradePlan Plan(string server = "/opt/omero/server/OMERO.server", string zip = "/opt/omero/OMERO.server-5.6.3-ice36.zip", bool vacuum = false, string from = "OMERO5.3") =>
        new(new OmeroHostSettings(server, "/opt/omero/server/venv3", "/var/backups/omero", ["--index-url", "https://pypi.example.org/simple"]),
            zip, "5.6.3", new(from, 0), OmeroReleases.Path(new(from, 0), new("OMERO5.4", 0))!, "r42", vacuum, "5.19.4");

    public static TheoryData<string> PhaseKeys => new(OmeroRunbook.Phases(Plan(vacuum: true)).Where(p => p.Script is not null).Select(p => p.Key));

    private static async Task<ProcessRunner.Result> Bash(string script, params string[] args) =>
        await ProcessRunner.RunAsync("bash", ["-c", script, "bash", .. args]);

    [Theory]
    [MemberData(nameof(PhaseKeys))]
    public async Task EveryPhaseScript_IsValidBash_EvenWithHostileValues(string key)
    {
        var plan = Plan(server: Hostile, zip: Hostile + ".zip", vacuum: true);
        var script = OmeroRunbook.Phases(plan).Single(p => p.Key == key).Script!;
        var check = await ProcessRunner.RunAsync("bash", ["-n", "-c", script], check: false);
        Assert.True(check.ExitCode == 0, check.StandardError);
    }

    [Fact]
    public async Task RehearsalScripts_AreValidBash_EvenWithHostileValues_AndRunTheSqlFromTheScratchRelease()
    {
        var plan = Plan(server: Hostile, zip: Hostile + ".zip", vacuum: true);
        var scratch = UpgradeConsole.Core.Runbooks.RehearsalScratch.For("omero", 7, Hostile, "run-7-x");
        foreach (var script in new[]
                 {
                     OmeroScripts.RehearsalDump(plan, scratch, "omero-omero-rehearsal7-a1.dump", null, null),
                     OmeroScripts.RehearsalDump(plan, scratch, null, Hostile + ".dump", new string('a', 64)),
                     OmeroScripts.RehearsalRestore(plan, scratch, Hostile + ".dump"),
                     OmeroScripts.RehearsalSetup(plan, scratch),
                     OmeroScripts.RehearsalCleanup(plan, scratch, "omero-omero-rehearsal7-a"),
                 })
        {
            var check = await ProcessRunner.RunAsync("bash", ["-n", "-c", script], check: false);
            Assert.True(check.ExitCode == 0, check.StandardError + "\n" + script);
        }

        // The rehearsed phases read config.xml and the SQL from the release unpacked in the scratch directory and keep their output there.
        var rehearsed = OmeroScripts.Rehearsed(Plan(server: Hostile), scratch);
        Assert.Equal(scratch.Directory + "/OMERO.server-5.6.3-ice36", rehearsed.Host.ServerDirectory);
        Assert.Equal(scratch.Directory, rehearsed.Host.BackupDirectory);
        var r = await Bash(OmeroScripts.Header(rehearsed.Host) + "printf '%s' \"$OMERODIR\"");
        Assert.Equal(scratch.Directory + "/OMERO.server-5.6.3-ice36", r.StandardOutput);
        Assert.Equal("omero_rehearsal_7", scratch.Database);
        Assert.False(File.Exists("/tmp/uc-pwned"));
    }

    [Fact]
    public async Task Header_CarriesHostileValuesAsExactlyThemselves()
    {
        var settings = new OmeroHostSettings(Hostile, Hostile + "v", Hostile + "b", []);
        var r = await Bash(OmeroScripts.Header(settings) + "printf '%s|%s|%s' \"$OMERODIR\" \"$VENV\" \"$BACKUP\"");
        Assert.Equal($"{Hostile}|{Hostile}v|{Hostile}b", r.StandardOutput);
        Assert.False(File.Exists("/tmp/uc-pwned"));
    }

    [Fact]
    public void RestoreAndRollback_QuoteTheDumpPathAndRunId()
    {
        var script = OmeroScripts.RestoreDatabase(Plan(), Hostile, "ab'cd");
        Assert.Contains("dump=" + ShellWords.Quote(Hostile), script, StringComparison.Ordinal);
        Assert.Contains("expected=" + ShellWords.Quote("ab'cd"), script, StringComparison.Ordinal);
    }

    [Fact]
    public void Phases_FollowTheGuidesOrder_WithTheSqlAsPointOfNoReturn()
    {
        var phases = OmeroRunbook.Phases(Plan(vacuum: true));
        Assert.Equal(["release", "precheck", "backup", "stop", "keep-config", "switch", "upgrade-sql", "vacuum", "merge-scripts", "pip", "certificates", "bioformats-cache", "start", "post-checks", "checklist"], phases.Select(p => p.Key));
        Assert.Equal(["upgrade-sql"], phases.Where(p => p.PointOfNoReturn).Select(p => p.Key));
        Assert.All(phases.SkipWhile(p => p.Key != "upgrade-sql").Where(p => p.Key != "checklist"), p => Assert.Equal(OmeroRollback.RestoreDatabase, p.Rollback));
        Assert.Equal(OmeroRollback.SwitchBack, phases.Single(p => p.Key == "switch").Rollback);
        Assert.Contains("Open an image", phases[^1].Manual!);
    }

    [Fact]
    public void Phases_WithoutASchemaChange_HaveNoSqlAndRollBackBySwitching()
    {
        var plan = Plan() with { CurrentDb = new("OMERO5.4", 0), Steps = [] };
        var phases = OmeroRunbook.Phases(plan);
        Assert.DoesNotContain(phases, p => p.Key is "upgrade-sql" or "vacuum");
        Assert.Equal(OmeroRollback.SwitchBack, phases.Single(p => p.Key == "start").Rollback);
        Assert.Contains("no upgrade script to check", OmeroScripts.Precheck(plan), StringComparison.Ordinal);
    }

    [Fact]
    public void Vacuum_OnlyWhenChosen() => Assert.DoesNotContain(OmeroRunbook.Phases(Plan()), p => p.Key == "vacuum");

    [Fact]
    public void Precheck_ReadsTheFirstStepsPrecheckOutOfTheZip()
    {
        var script = OmeroScripts.Precheck(Plan(from: "OMERO5.2"));
        Assert.Contains("member='OMERO.server-5.6.3-ice36/sql/psql/OMERO5.3__0/OMERO5.2__0-precheck.sql'", script, StringComparison.Ordinal);
        Assert.Contains("expected='YOUR DATABASE IS READY FOR UPGRADE TO VERSION OMERO5.3__0'", script, StringComparison.Ordinal);
        Assert.Contains("unzip -p \"$zip\" \"$member\" | psql", script, StringComparison.Ordinal);
    }

    [Fact]
    public void UpgradeSql_RunsEachScriptInSequence_SkippingOnesAlreadyApplied()
    {
        var script = OmeroScripts.UpgradeSql(Plan(from: "OMERO5.2"));
        var first = script.IndexOf("'sql/psql/OMERO5.3__0/OMERO5.2__0.sql'", StringComparison.Ordinal);
        var second = script.IndexOf("'sql/psql/OMERO5.4__0/OMERO5.3__0.sql'", StringComparison.Ordinal);
        Assert.True(first > 0 && second > first);
        Assert.Contains("grep -qxF 'YOU HAVE SUCCESSFULLY UPGRADED YOUR DATABASE TO VERSION OMERO5.4__0'", script, StringComparison.Ordinal);
        Assert.Contains("is not run again", script, StringComparison.Ordinal);
        Assert.DoesNotContain("PGPASSWORD=", script.Replace("PGPASSWORD=$(cfg omero.db.pass)", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public void PipAndCertificates_InstallTheRequiredVersions_AndDropTheTwoProtocolSettings()
    {
        var pip = OmeroScripts.PipOmeroPy(Plan());
        Assert.Contains("--upgrade '--index-url' 'https://pypi.example.org/simple' 'omero-py>=5.19.4'", pip, StringComparison.Ordinal);
        var certs = OmeroScripts.Certificates(Plan());
        Assert.Contains("'omero-certificates>=0.3'", certs, StringComparison.Ordinal);
        Assert.Contains("omero.glacier2.IceSSL.Protocols omero.glacier2.IceSSL.ProtocolVersionMax", certs, StringComparison.Ordinal);
        Assert.Contains("\"$OMERO\" config set \"$key\"\n", certs, StringComparison.Ordinal);
        Assert.Contains("\"$OMERO\" certificates", certs, StringComparison.Ordinal);
    }

    [Fact]
    public void MergeScripts_CopiesOnlyWhatTheReleaseLacks()
    {
        var script = OmeroScripts.MergeScripts(Plan());
        Assert.Contains("if [ ! -e \"$new/lib/scripts/$rel\" ]", script, StringComparison.Ordinal);
        Assert.Contains("differs, kept the new release's", script, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseBackup_ReadsTheVerifiedDumpLine()
    {
        var sha = new string('a', 64);
        Assert.Equal(new OmeroBackupRecord("/var/backups/omero/x.dump", 123, sha, 45), OmeroScripts.ParseBackup($"UC-BACKUP size=123 sha256={sha} ms=45 path=/var/backups/omero/x.dump"));
        Assert.Null(OmeroScripts.ParseBackup("UC-BACKUP size=abc"));
        Assert.Equal(new OmeroDbVersion("OMERO5.4", 0), OmeroScripts.ParseDbVersionLine("UC-DBVERSION OMERO5.4__0"));
    }

    [Fact]
    public void For_Discovery_PlansTheChainAndOmeroPy()
    {
        var discovery = OmeroDiscovery.Parse("::uc-omero:: dbpatch\nOMERO5.3__0\n");
        var settings = Plan().Host;
        var (plan, problem) = OmeroUpgradePlan.For(discovery, settings, "/opt/omero/OMERO.server-5.6.12-ice36.zip", "5.6.12", "r7", vacuum: true);
        Assert.Null(problem);
        Assert.Equal(["sql/psql/OMERO5.4__0/OMERO5.3__0.sql"], plan!.Steps.Select(s => s.ScriptPath));
        Assert.Equal("5.19.4", plan.OmeroPyMinimum);
        Assert.True(plan.Vacuum);
    }

    [Theory]
    [InlineData("::uc-omero:: dbpatch\nnothing\n", "/o/OMERO.server-5.6.3-ice36.zip", "5.6.3", "r1", "could not be read")]
    [InlineData("::uc-omero:: dbpatch\nOMERO5.3__0\n", "/o/OMERO.server-5.6.2-ice36.zip", "5.6.3", "r1", "is not the OMERO.server 5.6.3 release zip")]
    [InlineData("::uc-omero:: dbpatch\nOMERO5.3__0\n", "/o/OMERO.server-5.6.3-ice36.zip", "5.6.3", "r 1;x", "run id")]
    [InlineData("::uc-omero:: dbpatch\nOMERO4.4__0\n", "/o/OMERO.server-5.6.3-ice36.zip", "5.6.3", "r1", "No chain")]
    public void For_RefusesWithAReason(string discovery, string zip, string version, string runId, string reason)
    {
        var (plan, problem) = OmeroUpgradePlan.For(OmeroDiscovery.Parse(discovery), Plan().Host, zip, version, runId, vacuum: false);
        Assert.Null(plan);
        Assert.Contains(reason, problem, StringComparison.Ordinal);
    }
}
