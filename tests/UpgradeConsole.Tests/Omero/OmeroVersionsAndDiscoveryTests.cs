using UpgradeConsole.Core.Omero;

namespace UpgradeConsole.Tests.Omero;

public sealed class OmeroVersionsAndDiscoveryTests
{
    [Theory]
    [InlineData("5.3.5", "OMERO5.3__0")]
    [InlineData("5.4.10", "OMERO5.4__0")]
    [InlineData("5.6.3", "OMERO5.4__0")]
    [InlineData("5.2.8", "OMERO5.2__0")]
    public void SchemaOf_KnownRelease_IsItsDatabaseVersion(string server, string schema) =>
        Assert.Equal(schema, OmeroReleases.SchemaOf(server)!.ToString());

    [Fact]
    public void SchemaOf_UnknownRelease_IsNull() => Assert.Null(OmeroReleases.SchemaOf("4.4.12"));

    [Fact]
    public void Path_From52To54_RunsTheScriptsInSequence()
    {
        var path = OmeroReleases.Path(new("OMERO5.2", 0), new("OMERO5.4", 0))!;
        Assert.Equal(["sql/psql/OMERO5.3__0/OMERO5.2__0.sql", "sql/psql/OMERO5.4__0/OMERO5.3__0.sql"], path.Select(s => s.ScriptPath));
        Assert.Equal("sql/psql/OMERO5.3__0/OMERO5.2__0-precheck.sql", path[0].PrecheckPath);
        Assert.Equal("YOU HAVE SUCCESSFULLY UPGRADED YOUR DATABASE TO VERSION OMERO5.4__0", path[1].SuccessLine);
    }

    [Fact]
    public void Path_AlreadyThere_IsEmpty_AndBackwards_IsNull()
    {
        Assert.Empty(OmeroReleases.Path(new("OMERO5.4", 0), new("OMERO5.4", 0))!);
        Assert.Null(OmeroReleases.Path(new("OMERO5.4", 0), new("OMERO5.3", 0)));
    }

    [Theory]
    [InlineData("OMERO5.3__0", "OMERO5.3", 0)]
    [InlineData("OMERO5.1DEV__12", "OMERO5.1DEV", 12)]
    public void DbVersion_Parse_ReadsVersionAndPatch(string text, string version, int patch) =>
        Assert.Equal(new OmeroDbVersion(version, patch), OmeroDbVersion.Parse(text));

    [Theory]
    [InlineData("")]
    [InlineData("ERROR: relation \"dbpatch\" does not exist")]
    [InlineData("OMERO5.3")]
    public void DbVersion_ParseOfSomethingElse_IsNull(string text) => Assert.Null(OmeroDbVersion.Parse(text));

    [Theory]
    [InlineData(90300, "9.3.0")]
    [InlineData(150004, "15.4")]
    public void PrettyPostgres_WritesVersionsAsPostgresDoes(int num, string text) => Assert.Equal(text, OmeroReleases.PrettyPostgres(num));

    [Fact]
    public void MinimumOmeroPy_From5612_Is5194() // runbooks.md: 5.6.12+ needs omero-py ≥ 5.19.4
    {
        Assert.Equal("5.19.4", OmeroReleases.MinimumOmeroPy("5.6.12"));
        Assert.Null(OmeroReleases.MinimumOmeroPy("5.6.3"));
    }

    [Fact]
    public void VersionOfRelease_ReadsTheZipsTopDirectory()
    {
        Assert.Equal("OMERO.server-5.6.3-ice36", OmeroReleases.ReleaseDirectoryName("OMERO.server-5.6.3-ice36.zip"));
        Assert.Equal("5.6.3", OmeroReleases.VersionOfRelease("OMERO.server-5.6.3-ice36"));
        Assert.Null(OmeroReleases.VersionOfRelease("something-else"));
    }

    private const string Sample = """
        ::uc-omero:: omerodir
        /opt/omero/server/OMERO.server
        ::uc-omero:: symlink
        yes
        ::uc-omero:: tree
        /opt/omero/server/OMERO.server-5.3.5-ice36
        ::uc-omero:: version
        OMERO.py version:
        5.6.0
        OMERO.server version:
        5.3.5
        exit=0
        ::uc-omero:: config
        omero.data.dir=/OMERO
        omero.db.host=db.example.org
        omero.db.name=omero_prod
        omero.db.pass=********
        omero.db.port=5433
        omero.db.user=omero
        omero.ldap.password=hunter2
        ::uc-omero:: status
        exit=0
        ::uc-omero:: dbpatch
        OMERO5.3__0
        ::uc-omero:: pg
        150004
        ::uc-omero:: encoding
        UTF8
        ::uc-omero:: dbsize
        123456789
        ::uc-omero:: free
        987654321
        ::uc-omero:: datadir
        /OMERO
        4096
        ::uc-omero:: certificates

        ::uc-omero:: java
        openjdk version "11.0.21" 2023-10-17
        ::uc-omero:: end
        """;

    [Fact]
    public void Parse_ReadsEverySection()
    {
        var d = OmeroDiscovery.Parse(Sample);
        Assert.Equal("/opt/omero/server/OMERO.server", d.OmeroDir);
        Assert.True(d.ServerIsSymlink);
        Assert.Equal("/opt/omero/server/OMERO.server-5.3.5-ice36", d.ServerTree);
        Assert.Equal("5.3.5", d.ServerVersion);
        Assert.Equal("5.6.0", d.OmeroPyVersion);
        Assert.Equal(new OmeroDbSettings("db.example.org", 5433, "omero_prod", "omero", true), d.Database);
        Assert.Equal(new OmeroDbVersion("OMERO5.3", 0), d.DatabaseVersion);
        Assert.Equal(150004, d.PostgresVersionNum);
        Assert.Equal("UTF8", d.Encoding);
        Assert.Equal(123456789, d.DatabaseSizeBytes);
        Assert.Equal(987654321, d.BackupFreeBytes);
        Assert.Equal("/OMERO", d.DataDirectory);
        Assert.Equal(4096, d.BioFormatsCacheBytes);
        Assert.Null(d.OmeroCertificatesVersion);
        Assert.Equal("11.0.21", d.JavaVersion);
        Assert.Equal(0, d.AdminStatusExit);
        Assert.Empty(d.Problems);
    }

    [Fact]
    public void Parse_MasksEveryPasswordKey_EvenOneOmeroPrintedInFull()
    {
        var d = OmeroDiscovery.Parse(Sample);
        Assert.Equal(OmeroDiscovery.Mask, d.Config["omero.db.pass"]);
        Assert.Equal(OmeroDiscovery.Mask, d.Config["omero.ldap.password"]);
        Assert.DoesNotContain("hunter2", string.Join(",", d.Config.Values), StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_DefaultsAndFailures_AreReportedNotThrown()
    {
        var d = OmeroDiscovery.Parse("""
            ::uc-omero:: version
            Traceback (most recent call last):
            exit=1
            ::uc-omero:: config
            ::uc-omero:: dbpatch
            psql: error: connection to server at "localhost" (::1), port 5432 failed: Connection refused
            ::uc-omero:: datadir
            /OMERO
            none
            """);
        Assert.Null(d.ServerVersion);
        Assert.Null(d.DatabaseVersion);
        Assert.Null(d.BioFormatsCacheBytes);
        Assert.Equal(new OmeroDbSettings("localhost", 5432, "omero", "omero", false), d.Database);
        Assert.Contains(d.Problems, p => p.Contains("Connection refused", StringComparison.Ordinal));
        Assert.Contains(d.Problems, p => p.Contains("exit=1", StringComparison.Ordinal));
    }
}
