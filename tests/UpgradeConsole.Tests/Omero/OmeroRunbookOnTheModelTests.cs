using UpgradeConsole.Core.Omero;
using UpgradeConsole.Web.Omero;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Omero;

/// <summary>
/// The OMERO runbook on the runbook model: every phase shows the Core's script for the plan (quoted paths,
/// no password), the point of no return is the upgrade SQL, and the rollback undoes what started in the
/// runbook's order (the database only past the point of no return, never without a verified dump).
/// </summary>
public sealed class OmeroRunbookOnTheModelTests
{
    private static readonly Target Target = new()
    {
        Name = "omero-prod",
        Product = OmeroProduct.ProductId,
        WorkingDirectory = "/opt/omero/server/OMERO.server",
        PythonPath = "/opt/omero/venv3/bin/python3",
        BackupDirectory = "/backup/omero db",
        PipOptions = "--index-url https://pypi.example/simple",
    };

    private static readonly OmeroUpgradePlan Plan = new(OmeroRuntime.HostSettings(Target), "/opt/omero/server/OMERO.server-5.6.3-ice36.zip", "5.6.3",
        new("OMERO5.3", 0), [new(new("OMERO5.3", 0), new("OMERO5.4", 0))], "run-ID");

    private static string? Preview(string key) =>
        OmeroRunbooks.Upgrade.Phase(key)!.Preview(new PlanInputs(Target, "5.3.5", "5.6.3", new OmeroPlanFacts(Plan, new OmeroDiscoveryResult())));

    [Fact]
    public void TheRunbook_IsTheGuidesOrder_WithThePointOfNoReturnAtTheUpgradeSql()
    {
        var runbook = OmeroRunbooks.Upgrade;
        Assert.Equal(OmeroProduct.ProductId, runbook.Product);
        Assert.Equal(
            ["preflight", "release", "precheck", "backup", "stop", "keep-config", "switch", "upgrade-sql", "vacuum", "merge-scripts", "pip", "certificates", "bioformats-cache", "start", "post-checks", "checklist"],
            runbook.Phases.Select(p => p.Key));
        Assert.Equal("upgrade-sql", runbook.Phases[runbook.PointOfNoReturnIndex].Key);
        Assert.True(runbook.Phase("vacuum")!.Optional);
        Assert.True(runbook.Phase("preflight")!.Gate);
        Assert.Equal(PhaseKind.Manual, runbook.ChecklistPhase?.Kind);
        Assert.Equal(4, runbook.Checklist.Count);
        Assert.True(runbook.Requires("omero.precheck") && runbook.Requires("omero.postgres") && runbook.Requires("omero.release"));
        Assert.Same(runbook, new RunbookCatalog([OmeroProduct.Instance]).Find(OmeroRunbooks.UpgradeId));
        Assert.Equal(typeof(OmeroPlanSection), OmeroProduct.Instance.PlanSection);
    }

    [Fact]
    public void EveryAutomaticPhase_PreviewsTheCoresScript_ForThePlan()
    {
        foreach (var core in OmeroRunbook.Phases(Plan with { Vacuum = true }).Where(p => p.Script is not null))
        {
            Assert.Equal(core.Script, Preview(core.Key));
        }

        Assert.Contains("'/opt/omero/venv3'", Preview("pip"), StringComparison.Ordinal);
        Assert.Contains("'https://pypi.example/simple'", Preview("pip"), StringComparison.Ordinal);
        Assert.Contains("'/backup/omero db'", Preview("backup"), StringComparison.Ordinal);
        Assert.Contains("sql/psql/OMERO5.4__0/OMERO5.3__0.sql", Preview("upgrade-sql"), StringComparison.Ordinal);
        Assert.Null(Preview("checklist"));
        Assert.Equal("every preflight check, run again (discovery, PostgreSQL version, encoding, the precheck SQL, backup room, release zip or its download, omero admin status)", Preview("preflight"));
    }

    [Fact]
    public void NoSqlToRun_ThePreviewSaysSo()
    {
        var noSql = Plan with { CurrentDb = new("OMERO5.4", 0), Steps = [] };
        var preview = OmeroRunbooks.Upgrade.Phase("upgrade-sql")!.Preview(new PlanInputs(Target, "5.5.1", "5.6.3", new OmeroPlanFacts(noSql, new OmeroDiscoveryResult())));
        Assert.Equal("(nothing to run: the database schema does not change for this release)", preview);
    }

    [Theory]
    [InlineData("/opt/omero/venv3/bin/python3", "/opt/omero/venv3")]
    [InlineData("/opt/omero/venv3/bin/python", "/opt/omero/venv3")]
    [InlineData("/opt/omero/venv3/", "/opt/omero/venv3")]
    [InlineData("~/venv", "~/venv")]
    [InlineData(null, null)]
    public void Venv_FromThePythonPath(string? python, string? venv) => Assert.Equal(venv, OmeroRuntime.Venv(python));

    [Fact]
    public void RollbackPlan_BeforeTheSwitch_StartsTheOldServerAgain()
    {
        var (steps, refusal) = RollbackPlan.For(RunStoppedAt("keep-config", backup: "/backup/x.dump"), OmeroRunbooks.Upgrade);
        Assert.Null(refusal);
        Assert.Equal(["rb-start"], steps.Select(s => s.Key));
    }

    [Fact]
    public void RollbackPlan_AfterTheSwitch_PointsBackAndStarts()
    {
        var (steps, refusal) = RollbackPlan.For(RunStoppedAt("switch", backup: "/backup/x.dump"), OmeroRunbooks.Upgrade);
        Assert.Null(refusal);
        Assert.Equal([("rb-switch", "Point OMERO.server back at 5.3.5 with its config.xml"), ("rb-start", "Start OMERO.server 5.3.5")], steps);
    }

    [Fact]
    public void RollbackPlan_PastThePointOfNoReturn_RestoresTheDatabaseBetweenSwitchAndStart()
    {
        var (steps, refusal) = RollbackPlan.For(RunStoppedAt("certificates", backup: "/backup/x.dump"), OmeroRunbooks.Upgrade);
        Assert.Null(refusal);
        Assert.Equal(["rb-switch", "rb-restore-db", "rb-start"], steps.Select(s => s.Key));
    }

    [Fact]
    public void RollbackPlan_PastThePointOfNoReturnWithoutADump_IsRefused()
    {
        var (steps, refusal) = RollbackPlan.For(RunStoppedAt("upgrade-sql", backup: null), OmeroRunbooks.Upgrade);
        Assert.Empty(steps);
        Assert.Equal(RefusalReason.NoBackupToRestore, refusal?.Reason);
    }

    /// <summary>A phase not chosen (VACUUM skipped) changed nothing: a run failing before its backup still rolls back.</summary>
    [Fact]
    public void RollbackPlan_ASkippedOptionalPhase_AsksForNothing()
    {
        var run = RunStoppedAt("stop", backup: null);
        run.Phases.Single(p => p.Key == "vacuum").State = PhaseState.Skipped;
        var (steps, refusal) = RollbackPlan.For(run, OmeroRunbooks.Upgrade);
        Assert.Null(refusal);
        Assert.Equal(["rb-start"], steps.Select(s => s.Key));
    }

    private static Run RunStoppedAt(string at, string? backup)
    {
        var phases = OmeroRunbooks.Upgrade.Phases;
        var stop = phases.ToList().FindIndex(p => p.Key == at);
        return new Run
        {
            RunbookId = OmeroRunbooks.UpgradeId,
            FromVersion = "5.3.5",
            ToVersion = "5.6.3",
            State = RunState.Failed,
            ActiveTargetId = 1,
            BackupPath = backup,
            Phases = [.. phases.Select((p, i) => new RunPhase { Index = i, Key = p.Key, Title = p.Title, State = i < stop ? PhaseState.Succeeded : i == stop ? PhaseState.Failed : PhaseState.Pending })],
        };
    }
}
