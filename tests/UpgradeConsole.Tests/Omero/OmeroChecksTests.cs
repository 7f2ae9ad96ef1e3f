using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Omero;

namespace UpgradeConsole.Tests.Omero;

public sealed class OmeroChecksTests
{
    private static readonly OmeroDbVersion V54 = new("OMERO5.4", 0);

    [Fact]
    public void UpgradePath_From53To563_PassesNamingTheScript()
    {
        var r = OmeroChecks.UpgradePath(new("OMERO5.3", 0), "5.6.3");
        Assert.Equal(CheckStatus.Pass, r.Status);
        Assert.Contains("sql/psql/OMERO5.4__0/OMERO5.3__0.sql", r.Explanation, StringComparison.Ordinal);
    }

    [Fact]
    public void UpgradePath_AlreadyAtTheSchema_PassesWithoutSql() =>
        Assert.Contains("no SQL upgrade runs", OmeroChecks.UpgradePath(V54, "5.6.3").Explanation, StringComparison.Ordinal);

    [Theory]
    [InlineData("OMERO4.4", "5.6.3")]
    [InlineData("OMERO5.3", "7.0.0")]
    public void UpgradePath_NoChain_Fails(string from, string target) =>
        Assert.Equal(CheckStatus.Fail, OmeroChecks.UpgradePath(new(from, 0), target).Status);

    [Fact]
    public void UpgradePath_UnreadableVersion_Fails() => Assert.Equal(CheckStatus.Fail, OmeroChecks.UpgradePath(null, "5.6.3").Status);

    [Fact]
    public void PostgresVersion_AtOrAboveThePrerequisite_Passes()
    {
        Assert.Equal(CheckStatus.Pass, OmeroChecks.PostgresVersion(90300, V54).Status);
        Assert.Equal(CheckStatus.Pass, OmeroChecks.PostgresVersion(150004, V54).Status);
    }

    [Fact]
    public void PostgresVersion_BelowThePrerequisite_FailsSayingTheScriptWouldAbort()
    {
        var r = OmeroChecks.PostgresVersion(90224, V54);
        Assert.Equal(CheckStatus.Fail, r.Status);
        Assert.Contains("9.2.24 is older than 9.3.0", r.Explanation, StringComparison.Ordinal);
    }

    [Fact]
    public void PostgresVersion_Unknown_FailsAndNoRecordedMinimum_Warns()
    {
        Assert.Equal(CheckStatus.Fail, OmeroChecks.PostgresVersion(null, V54).Status);
        Assert.Equal(CheckStatus.Warn, OmeroChecks.PostgresVersion(150004, new("OMERO5.2", 0)).Status);
    }

    /// <summary>OMERO5.3__0/OMERO5.2__0.sql asks for 90300 too (<c>assert_db_server_prerequisites(90300)</c>).</summary>
    [Fact]
    public void PostgresVersion_For53_NeedsPostgres93()
    {
        Assert.Equal(90300, OmeroReleases.MinimumPostgresFor(new("OMERO5.3", 0)));
        Assert.Equal(CheckStatus.Pass, OmeroChecks.PostgresVersion(90300, new("OMERO5.3", 0)).Status);
        var old = OmeroChecks.PostgresVersion(90224, new("OMERO5.3", 0));
        Assert.Equal(CheckStatus.Fail, old.Status);
        Assert.Contains("9.2.24 is older than 9.3.0", old.Explanation, StringComparison.Ordinal);
    }

    [Fact]
    public void Encoding_Utf8_Passes() => Assert.Equal(CheckStatus.Pass, OmeroChecks.Encoding("UTF8", "omero", "omero").Status);

    [Fact]
    public void Encoding_Other_FailsWithAReencodePlan()
    {
        var r = OmeroChecks.Encoding("LATIN1", "omero_prod", "omero");
        Assert.Equal(CheckStatus.Fail, r.Status);
        Assert.Contains("createdb -E UTF8 -T template0 -O omero omero_prod_utf8", r.Explanation, StringComparison.Ordinal);
        Assert.Contains("pg_restore -d omero_prod_utf8", r.Explanation, StringComparison.Ordinal);
        Assert.Equal(CheckStatus.Fail, OmeroChecks.Encoding(null, "omero", "omero").Status);
    }

    private static OmeroPrecheckResult Precheck(int exit, string output) => new("sql/psql/OMERO5.4__0/OMERO5.3__0-precheck.sql", V54, exit, output);

    [Fact]
    public void Precheck_ExactlyTheReadyLine_Passes() =>
        Assert.Equal(CheckStatus.Pass, OmeroChecks.Precheck(Precheck(0, "[precheck] sql/… against omero\n\n\n\nYOUR DATABASE IS READY FOR UPGRADE TO VERSION OMERO5.4__0\n\n\n\nUC-PRECHECK ready\n")).Status);

    [Fact]
    public void Precheck_AnError_FailsInTheScriptsOwnWords()
    {
        var r = OmeroChecks.Precheck(Precheck(3, "ERROR:  duplicate original file paths with IDs {2,5}\nCONTEXT:  PL/pgSQL function inline_code_block line 10 at RAISE\nUC-PRECHECK not-ready exit=3"));
        Assert.Equal(CheckStatus.Fail, r.Status);
        Assert.Contains("ERROR:  duplicate original file paths with IDs {2,5}", r.Explanation, StringComparison.Ordinal);
        Assert.Contains("exit 3", r.Explanation, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, "YOUR DATABASE IS READY FOR UPGRADE TO VERSION OMERO5.4__0\nWARNING:  something else")]
    [InlineData(0, "YOUR DATABASE IS READY FOR UPGRADE TO VERSION OMERO5.3__0")]
    [InlineData(1, "YOUR DATABASE IS READY FOR UPGRADE TO VERSION OMERO5.4__0")]
    [InlineData(0, "")]
    public void Precheck_AnythingButExactlyReady_Fails(int exit, string output) =>
        Assert.Equal(CheckStatus.Fail, OmeroChecks.Precheck(Precheck(exit, output)).Status);

    [Fact]
    public void BackupRoom_EnoughFree_Passes_TooLittle_Fails()
    {
        Assert.Equal(CheckStatus.Pass, OmeroChecks.BackupRoom(2L << 30, 1L << 30).Status);
        var r = OmeroChecks.BackupRoom(1L << 30, 1L << 30);
        Assert.Equal(CheckStatus.Fail, r.Status);
        Assert.Contains("1.1 GiB", r.Explanation, StringComparison.Ordinal);
        Assert.Equal(CheckStatus.Fail, OmeroChecks.BackupRoom(null, 1).Status);
    }

    [Fact]
    public void ReleaseZip_Present_Passes_Downloadable_Warns_Neither_Fails()
    {
        Assert.Equal(CheckStatus.Pass, OmeroChecks.ReleaseZip(true, null).Status);
        Assert.Equal(CheckStatus.Warn, OmeroChecks.ReleaseZip(false, "https://downloads.example.org/OMERO.server-5.6.3-ice36.zip").Status);
        Assert.Equal(CheckStatus.Fail, OmeroChecks.ReleaseZip(false, null).Status);
        var unreachable = OmeroChecks.ReleaseZip(false, "https://downloads.example.org/OMERO.server-5.6.3-ice36.zip", "curl: (22) The requested URL returned error: 404");
        Assert.Equal(CheckStatus.Fail, unreachable.Status);
        Assert.Contains("cannot download it from https://downloads.example.org/OMERO.server-5.6.3-ice36.zip: curl: (22)", unreachable.Explanation, StringComparison.Ordinal);
    }

    [Fact]
    public void Precheck_NotRunBecauseTheZipIsStillToBeDownloaded_SaysTheRunRunsItFirst()
    {
        var d = OmeroDiscovery.Parse("::uc-omero:: dbpatch\nOMERO5.3__0\n::uc-omero:: pg\n150004\n::uc-omero:: encoding\nUTF8\n");
        var precheck = OmeroChecks.Evaluate(d, "5.6.3", null, false, "https://downloads.example.org/x.zip").Single(c => c.Id == "omero.precheck");
        Assert.Equal(CheckStatus.Warn, precheck.Status);
        Assert.Contains("the run downloads it, then runs the precheck before anything changes", precheck.Explanation, StringComparison.Ordinal);
        Assert.Equal("The precheck has not run yet.", OmeroChecks.Evaluate(d, "5.6.3", null, false, null).Single(c => c.Id == "omero.precheck").Explanation);
    }

    [Fact]
    public void AdminStatus_Running_Passes_Down_Warns_Unknown_Fails()
    {
        Assert.Equal(CheckStatus.Pass, OmeroChecks.AdminStatus(0).Status);
        Assert.Equal(CheckStatus.Warn, OmeroChecks.AdminStatus(1).Status);
        Assert.Equal(CheckStatus.Fail, OmeroChecks.AdminStatus(null).Status);
    }

    [Fact]
    public void Evaluate_GivesOneVerdictPerCheck()
    {
        var d = OmeroDiscovery.Parse("::uc-omero:: dbpatch\nOMERO5.3__0\n::uc-omero:: pg\n150004\n::uc-omero:: encoding\nUTF8\n::uc-omero:: dbsize\n10\n::uc-omero:: free\n100\n::uc-omero:: status\nexit=0\n");
        var results = OmeroChecks.Evaluate(d, "5.6.3", Precheck(0, "YOUR DATABASE IS READY FOR UPGRADE TO VERSION OMERO5.4__0"), true, null);
        Assert.Equal(["omero.path", "omero.postgres", "omero.encoding", "omero.precheck", "omero.backup-room", "omero.release", "omero.status"], results.Select(r => r.Id));
        Assert.All(results, r => Assert.Equal(CheckStatus.Pass, r.Status));
    }
}
