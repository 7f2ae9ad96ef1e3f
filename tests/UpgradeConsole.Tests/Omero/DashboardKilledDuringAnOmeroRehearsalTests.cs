using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using UpgradeConsole.Core.Omero;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Omero;

/// <summary>
/// Issue 18 for OMERO: the dashboard dies (SIGKILL, where the rehearsed upgrade SQL has started and the scratch database
/// and the unpacked release exist) in the middle of an OMERO rehearsal. The restarted dashboard takes it over like any
/// run, finishes it and removes the copy; production's config.xml and database are untouched.
/// </summary>
public sealed class DashboardKilledDuringAnOmeroRehearsalTests(SshServer ssh, PostgresServer postgres)
{
    [Fact]
    public async Task KilledMidRehearsal_TheRestartedDashboardFinishesItAndRemovesTheCopy()
    {
        var data = Directory.CreateTempSubdirectory("uc-omero-rehearsal-kill-").FullName;
        OmeroTarget omero;
        await using (var app = new UpgradeConsoleApplicationFactory(DatabaseProvider.Sqlite, null, data))
        {
            using var admin = await app.CreateFirstAdminAsync();
            omero = await OmeroTarget.CreateAsync(app, ssh, postgres);
        }

        await using var _ = omero;
        var database = new NpgsqlConnectionStringBuilder(omero.Host.DatabaseConnection).Database!;
        await using (var conn = new NpgsqlConnection(postgres.AdminConnectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"ALTER ROLE \"{new NpgsqlConnectionStringBuilder(omero.Host.DatabaseConnection).Username}\" CREATEDB", conn);
            await cmd.ExecuteNonQueryAsync();
        }

        var (_, configBefore) = await omero.Host.RunAsync("sha256sum server/OMERO.server/etc/grid/config.xml && readlink server/OMERO.server");
        var tablesBefore = await TableChecksums.EveryTableAsync(omero.Host.DatabaseConnection);
        var token = (await ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), "tokens", "create", "--user", UpgradeConsoleApplicationFactory.AdminEmail, "--name", "kill test", "--role", "Admin"],
            environment: new Dictionary<string, string?> { ["UpgradeConsole__DataDirectory"] = data, ["DOTNET_ENVIRONMENT"] = "Production", ["ASPNETCORE_ENVIRONMENT"] = "Production" },
            workingDirectory: AppContext.BaseDirectory)).StandardOutput.Trim();

        int id;
        await using (var first = await DashboardProcess.StartAsync(data, new Dictionary<string, string> { [CrashPoints.Variable] = "started:upgrade-sql" }))
        {
            using var api = ApiTokens.Client(first.BaseUrl, token);
            using var started = await api.PostAsJsonAsync($"/api/v1/targets/{omero.TargetId}/rehearsals", new { runbook = "omero-upgrade", to = OmeroHost.NewVersion });
            Assert.True(started.IsSuccessStatusCode, await started.Content.ReadAsStringAsync());
            id = (await started.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt32();
            Assert.True(await first.ExitedWithinAsync(TimeSpan.FromMinutes(5)), "the dashboard did not reach its crash point\n" + first.Output);
        }

        // Killed with the copy in place.
        Assert.Equal(1L, await RehearsalCopy.ScratchDatabasesAsync(postgres, database));

        var log = "";
        await using (var second = await DashboardProcess.StartAsync(data))
        {
            using var api = ApiTokens.Client(second.BaseUrl, token);
            JsonElement run = default;
            await Eventually.TrueAsync(async () =>
            {
                run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{id}");
                return run.GetProperty("state").GetString() is not "Running";
            }, TimeSpan.FromMinutes(6), () => $"{run}\n{second.Output}");
            log = await api.GetStringAsync($"/api/v1/runs/{id}/log");
            Assert.True(run.GetProperty("state").GetString() == "Succeeded", $"{run}\n{log}");
            Assert.Contains("continuing after an interruption", log, StringComparison.Ordinal);
            Assert.Contains("YOU HAVE SUCCESSFULLY UPGRADED YOUR DATABASE TO VERSION OMERO5.4__0", log, StringComparison.Ordinal);
        }

        Assert.Equal(0L, await RehearsalCopy.ScratchDatabasesAsync(postgres, database));
        Assert.NotNull(RehearsalCopy.ScratchDirectory(log));
        Assert.Equal("0", await RehearsalCopy.LeftAsync(ssh, RehearsalScripts.DumpPrefix(OmeroScripts.RehearsalProduct, database, id), log, omero.Host.AbsoluteDirectory + "/backups"));
        Assert.Equal(configBefore, (await omero.Host.RunAsync("sha256sum server/OMERO.server/etc/grid/config.xml && readlink server/OMERO.server")).Output);
        Assert.Equal(tablesBefore, await TableChecksums.EveryTableAsync(omero.Host.DatabaseConnection));
        Assert.Equal("OMERO5.3__0", await omero.Host.DbVersionAsync());
    }
}
