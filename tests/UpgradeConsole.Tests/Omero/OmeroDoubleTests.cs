using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Omero;

/// <summary>
/// The OMERO host double behaves as omero-py's <c>omero</c> command and OMERO's SQL scripts do
/// (OmeroDouble/README.md lists the facts and their files): messages, exit codes and refusals, over
/// a real sshd, a real venv and pip, and a real PostgreSQL.
/// </summary>
public sealed class OmeroDoubleTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
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

    private string Precheck => $"unzip -p {ShellWords.Quote(_host.NewReleaseZip)} OMERO.server-{OmeroHost.NewVersion}-ice36/sql/psql/OMERO5.4__0/OMERO5.3__0-precheck.sql";

    private string Upgrade => $"unzip -p {ShellWords.Quote(_host.NewReleaseZip)} OMERO.server-{OmeroHost.NewVersion}-ice36/sql/psql/OMERO5.4__0/OMERO5.3__0.sql";

    private static string Psql(string script) => $"{script} | (export PGHOST=$(omero config get omero.db.host) PGPORT=$(omero config get omero.db.port) PGDATABASE=$(omero config get omero.db.name) PGUSER=$(omero config get omero.db.user) PGPASSWORD=\"$(omero config get omero.db.pass)\"; psql -X -q -At -v ON_ERROR_STOP=1)";

    [Fact]
    public async Task Version_NamesOmeroPyAndTheServerOfOmerodir()
    {
        var (exit, output) = await _host.RunAsync("omero version");
        Assert.Equal(0, exit);
        Assert.Equal("OMERO.py version:\n5.6.0\nOMERO.server version:\n5.3.5", output.Trim());
    }

    [Fact]
    public async Task ConfigGet_MasksThePasswordInTheList_ButPrintsASingleKeyAsItIs()
    {
        var (exit, all) = await _host.RunAsync("omero config get");
        Assert.Equal(0, exit);
        Assert.Contains("omero.db.pass=********", all, StringComparison.Ordinal);
        Assert.DoesNotContain(OmeroHost.DbPassword, all, StringComparison.Ordinal);
        Assert.DoesNotContain("omero.config.version", all, StringComparison.Ordinal);
        Assert.Equal(OmeroHost.DbPassword, (await _host.RunAsync("omero config get omero.db.pass")).Output.TrimEnd('\n'));
        Assert.Equal("", (await _host.RunAsync("omero config get omero.no.such.key")).Output);

        var (bad, badOutput) = await _host.RunAsync("omero config set 'not a key' x");
        Assert.Equal(506 % 256, bad);
        Assert.Contains("Illegal property name: not a key", badOutput, StringComparison.Ordinal);

        Assert.Equal(0, (await _host.RunAsync("omero config set omero.glacier2.IceSSL.Protocols")).Exit);
        Assert.DoesNotContain("omero.glacier2.IceSSL.Protocols", (await _host.RunAsync("omero config get")).Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Admin_StartStopStatus_HaveTheRealMessagesAndExitCodes()
    {
        Assert.Equal(0, (await _host.RunAsync("omero admin status")).Exit);
        var (again, againOutput) = await _host.RunAsync("omero admin start");
        // omero dies with 876; a process exit status keeps the low 8 bits, so the shell sees 108.
        Assert.Equal(876 % 256, again);
        Assert.Contains("Server already running", againOutput, StringComparison.Ordinal);

        var (stop, stopOutput) = await _host.RunAsync("omero admin stop");
        Assert.Equal(0, stop);
        Assert.Contains("Waiting on shutdown. Use CTRL-C to exit", stopOutput, StringComparison.Ordinal);
        Assert.Equal(1, (await _host.RunAsync("omero admin status")).Exit);
        var (stopped, stoppedOutput) = await _host.RunAsync("omero admin stop");
        Assert.Equal(1, stopped);
        Assert.Contains("Server not running", stoppedOutput, StringComparison.Ordinal);

        var (start, startOutput) = await _host.RunAsync("omero admin start");
        Assert.Equal(0, start);
        Assert.Contains("WARNING: Your server has not been configured for production use.", startOutput, StringComparison.Ordinal);
        Assert.Contains("WARNING: Your server is configured to allow a deprecated TLS protocol.", startOutput, StringComparison.Ordinal);
        Assert.Contains("Waiting on startup. Use CTRL-C to exit", startOutput, StringComparison.Ordinal);
        Assert.Equal(0, (await _host.RunAsync("omero admin status")).Exit);
    }

    [Fact]
    public async Task Start_OfTheNewRelease_RefusesTheOldSchema_AndDiagnosticsShowWhy()
    {
        Assert.Equal(0, (await _host.RunAsync("omero admin stop")).Exit);
        var (switched, switchOutput) = await _host.RunAsync(
            $"cp server/OMERO.server/etc/grid/config.xml config.xml && unzip -q -d server {ShellWords.Quote(_host.NewReleaseZip)} && ln -sfn OMERO.server-{OmeroHost.NewVersion}-ice36 server/OMERO.server && cp config.xml server/OMERO.server/etc/grid/config.xml");
        Assert.True(switched == 0, switchOutput);

        var (start, startOutput) = await _host.RunAsync("omero admin start --wait 30");
        Assert.Equal(43, start);
        Assert.Contains("Failed to startup some components after 30.0 seconds", startOutput, StringComparison.Ordinal);

        var (diag, diagOutput) = await _host.RunAsync("omero admin diagnostics");
        Assert.Equal(0, diag);
        Assert.Contains("OMERO Diagnostics (admin)", diagOutput, StringComparison.Ordinal);
        Assert.Matches(@"Component:\s+OMERO.server\s+5\.6\.3", diagOutput);
        Assert.Matches(@"Server:\s+icegridnode\s+not started", diagOutput);
        Assert.Contains("DB version (OMERO5.3__0) does not match the version this server runs on (OMERO5.4__0)", diagOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Certificates_NeedThePlugin_ThenSetTheirKeysAndMakeRealCertificates()
    {
        var (missing, missingOutput) = await _host.RunAsync("omero certificates");
        Assert.Equal(2, missing);
        Assert.Contains("invalid choice: 'certificates'", missingOutput, StringComparison.Ordinal);

        Assert.Equal(0, (await _host.RunAsync("pip install -q --disable-pip-version-check --no-index --find-links wheels 'omero-certificates>=0.3'")).Exit);
        Assert.Equal(0, (await _host.RunAsync("omero config set omero.glacier2.IceSSL.Protocols && omero config set omero.glacier2.IceSSL.ProtocolVersionMax")).Exit);
        var (made, madeOutput) = await _host.RunAsync("omero certificates");
        Assert.True(made == 0, madeOutput);
        Assert.Matches(@"certificates created: \S+/data/certs/server\.key \S+/data/certs/server\.pem \S+/data/certs/server\.p12", madeOutput);
        Assert.Equal(0, (await _host.RunAsync("openssl x509 -noout -in data/certs/server.pem")).Exit);
        Assert.Equal("TLS1_2,TLS1_3", (await _host.RunAsync("omero config get omero.glacier2.IceSSL.Protocols")).Output.Trim());
    }

    [Fact]
    public async Task Precheck_RefusesADuplicatePath_PrintsReadyOnceFixed_AndChangesNothing()
    {
        await _host.ExecuteAsync("INSERT INTO originalfile (id, permissions, name, path, repo, creation_id, group_id, owner_id, update_id) VALUES (5, -88, 'cells.tif', 'ada_2/2017-06//21/10-01-02.123/', 'a6f1f36a-6c0b-4dc6-9a63-5b1c7c3a1f10', 4, 3, 2, 4)");
        var (red, redOutput) = await _host.RunAsync(Psql(Precheck));
        Assert.Equal(3, red);
        Assert.Contains("ERROR:  duplicate original file paths with IDs {2,5}", redOutput, StringComparison.Ordinal);

        await _host.ExecuteAsync("DELETE FROM originalfile WHERE id = 5");
        var before = await _host.RowCountsAsync();
        var (green, greenOutput) = await _host.RunAsync(Psql(Precheck));
        Assert.Equal(0, green);
        Assert.Equal("YOUR DATABASE IS READY FOR UPGRADE TO VERSION OMERO5.4__0", greenOutput.Trim());
        Assert.Equal(before, await _host.RowCountsAsync());
        Assert.Equal("OMERO5.3__0", await _host.DbVersionAsync());
    }

    [Fact]
    public async Task Upgrade_MovesDbpatch_AndRefusesToRunTwice()
    {
        var (ok, okOutput) = await _host.RunAsync(Psql(Upgrade));
        Assert.True(ok == 0, okOutput);
        Assert.Equal("YOU HAVE SUCCESSFULLY UPGRADED YOUR DATABASE TO VERSION OMERO5.4__0", okOutput.Trim());
        Assert.Equal("OMERO5.4__0", await _host.DbVersionAsync());
        Assert.Equal("Database updated.", await _host.ScalarAsync<string>("SELECT message FROM dbpatch ORDER BY id DESC LIMIT 1"));
        Assert.Equal("OMERO5.3", await _host.ScalarAsync<string>("SELECT previousversion FROM dbpatch ORDER BY id DESC LIMIT 1"));
        Assert.Equal(15L, await _host.ScalarAsync<long>("SELECT count(*) FROM adminprivilege"));

        var (twice, twiceOutput) = await _host.RunAsync(Psql(Upgrade));
        Assert.Equal(3, twice);
        Assert.Contains("wrong OMERO database version for this upgrade script", twiceOutput, StringComparison.Ordinal);
        Assert.Equal(3L, await _host.ScalarAsync<long>("SELECT count(*) FROM dbpatch"));

        var (pre, preOutput) = await _host.RunAsync(Psql(Precheck));
        Assert.Equal(3, pre);
        Assert.Contains("wrong OMERO database version for this upgrade script", preOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Scripts_RefuseTooOldAPostgres()
    {
        // A release whose scripts ask for more than this PostgreSQL is, as 5.4's ask 9.3 of an 8.4 server.
        Assert.Equal(0, (await _host.RunAsync("/usr/bin/python3 double/build_release.py 9.9.9 OMERO5.4__0 future --pg-prereq 990000 > /dev/null")).Exit);
        var (exit, output) = await _host.RunAsync(Psql("unzip -p future/OMERO.server-9.9.9-ice36.zip OMERO.server-9.9.9-ice36/sql/psql/OMERO5.4__0/OMERO5.3__0.sql"));
        Assert.Equal(3, exit);
        Assert.Matches(@"ERROR:  PostgreSQL database server version \d+\.\d+\.\d+ is less than OMERO prerequisite 99\.0\.0", output);
        Assert.Equal("OMERO5.3__0", await _host.DbVersionAsync());
    }
}
