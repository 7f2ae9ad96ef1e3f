using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Issue 18: the dashboard dies (SIGKILL, at the crash point where the rehearsed update-db-data phase has started and
/// the scratch database and venv exist) in the middle of a rehearsal. The restarted dashboard takes the rehearsal over
/// like any run, finishes it and removes the copy; production is untouched.
/// </summary>
public sealed class DashboardKilledDuringARehearsalTests(SshServer ssh, PostgresServer postgres)
{
    [Fact]
    public async Task KilledMidRehearsal_TheRestartedDashboardFinishesItAndRemovesTheCopy()
    {
        var data = Directory.CreateTempSubdirectory("uc-rehearsal-kill-").FullName;
        FractalTarget fractal;
        await using (var app = new UpgradeConsoleApplicationFactory(DatabaseProvider.Sqlite, null, data))
        {
            var admin = await app.CreateFirstAdminAsync();
            fractal = await FractalTarget.CreateAsync(app, admin, ssh, postgres);
        }

        await using var _ = fractal;
        await fractal.PrepareForUpgradeAsync(ssh);
        await using (var conn = new NpgsqlConnection(postgres.AdminConnectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"ALTER ROLE \"{new NpgsqlConnectionStringBuilder(fractal.DatabaseConnection).Username}\" CREATEDB", conn);
            await cmd.ExecuteNonQueryAsync();
        }

        var workdir = await fractal.Host.AbsoluteDirectoryAsync();
        var envBefore = (await ssh.RunAsync($"sha256sum {workdir}/.fractal_server.env")).StandardOutput;
        var usersBefore = await fractal.DumpUserTablesAsync();
        var token = (await ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), "tokens", "create", "--user", UpgradeConsoleApplicationFactory.AdminEmail, "--name", "kill test", "--role", "Admin"],
            environment: new Dictionary<string, string?> { ["UpgradeConsole__DataDirectory"] = data, ["DOTNET_ENVIRONMENT"] = "Production", ["ASPNETCORE_ENVIRONMENT"] = "Production" },
            workingDirectory: AppContext.BaseDirectory)).StandardOutput.Trim();

        int id;
        await using (var first = await DashboardProcess.StartAsync(data, new Dictionary<string, string> { [CrashPoints.Variable] = "started:update-db-data" }))
        {
            using var api = ApiTokens.Client(first.BaseUrl, token);
            using var started = await api.PostAsJsonAsync($"/api/v1/targets/{fractal.TargetId}/rehearsals", new { runbook = "fractal-2.16-to-2.17.0" });
            Assert.True(started.IsSuccessStatusCode, await started.Content.ReadAsStringAsync());
            id = (await started.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt32();
            Assert.True(await first.ExitedWithinAsync(TimeSpan.FromMinutes(5)), "the dashboard did not reach its crash point\n" + first.Output);
        }

        // Killed with the copy in place.
        Assert.Equal(1L, await ScratchDatabasesAsync(new NpgsqlConnectionStringBuilder(fractal.DatabaseConnection).Database!));

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
            Assert.True(run.GetProperty("state").GetString() == "Succeeded", $"{run}\n{await api.GetStringAsync($"/api/v1/runs/{id}/log")}");
            Assert.Equal("rehearsal", run.GetProperty("kind").GetString());
            log = await api.GetStringAsync($"/api/v1/runs/{id}/log");
            Assert.Contains("continuing after an interruption", log, StringComparison.Ordinal);
            Assert.Contains("END - all ok.", log, StringComparison.Ordinal);
        }

        Assert.Equal(0L, await ScratchDatabasesAsync(new NpgsqlConnectionStringBuilder(fractal.DatabaseConnection).Database!));
        // This rehearsal's own directory and dumps (another test's run {id} may be rehearsing beside it).
        Assert.NotNull(RehearsalCopy.ScratchDirectory(log));
        Assert.Equal("0", await RehearsalCopy.LeftAsync(ssh, fractal, id, log));
        Assert.Equal(envBefore, (await ssh.RunAsync($"sha256sum {workdir}/.fractal_server.env")).StandardOutput);
        Assert.Equal(usersBefore, await fractal.DumpUserTablesAsync());
        Assert.Equal("981d588fe248", await fractal.ScalarAsync<string>("SELECT version_num FROM alembic_version"));
    }

    private async Task<long> ScratchDatabasesAsync(string database)
    {
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync();
        // Only this target's: other tests rehearse on the same server meanwhile.
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_database WHERE starts_with(datname, @db || '_rehearsal_')", conn);
        cmd.Parameters.AddWithValue("db", database);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }
}
