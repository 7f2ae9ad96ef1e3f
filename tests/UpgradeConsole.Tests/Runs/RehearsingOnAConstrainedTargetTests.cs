using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Issue 18: a rehearsal on a target that is not the easy case. Too little room for the scratch venv (a small tmpfs
/// under the step directories, real `df`/`du` on the target): refused by the first step before anything is made.
/// A target whose steps run as a service user: the rehearsal's steps run as that user too (sudo -n -u, like the real
/// run's), their scratch directory is in that user's home, and it passes and is removed.
/// </summary>
public sealed class RehearsingOnAConstrainedTargetTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private const string Runbook = "fractal-2.16-to-2.17.0";
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private readonly List<string> _mounts = [];
    private FractalTarget? _fractal;
    private HttpClient _admin = default!;
    private string _token = "";

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = await _app.CreateFirstAdminAsync();
        await _app.CreateUserAsync(_admin, "olivia@example.org", "Operator");
        _token = await ApiTokens.CreateAsync(_app, "olivia@example.org", "rehearsal script", "Operator");
    }

    [Fact]
    public async Task Rehearsal_WithTooLittleRoomForTheScratchVenv_IsRefusedBeforeAnythingIsMade()
    {
        var fractal = await TargetAsync();
        var workdir = await fractal.Host.AbsoluteDirectoryAsync();
        var venvKb = long.Parse((await ssh.RunAsync($"du -sk {workdir}/venv | cut -f1")).StandardOutput.Trim(), CultureInfo.InvariantCulture);
        // Room for the step directories, not for a venv the size of production's (the dump and the copy go elsewhere).
        var runs = await SmallFilesystemAsync(Math.Max(1024, venvKb / 2));
        await ChangeTargetAsync(fractal.TargetId, t => t.RunsDirectory = runs);

        using var api = ApiTokens.Client(_app.BaseUrl, _token);
        var id = await RehearseAndWaitAsync(api, fractal.TargetId);
        var run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{id}", TestContext.Current.CancellationToken);
        var log = await api.GetStringAsync($"/api/v1/runs/{id}/log", TestContext.Current.CancellationToken);
        Assert.True(run.GetProperty("state").GetString() == "Failed", $"{run}\n{log}");
        var states = run.GetProperty("phases").EnumerateArray().ToDictionary(p => p.GetProperty("key").GetString()!, p => p.GetProperty("state").GetString());
        Assert.Equal("Failed", states["rehearsal-dump"]);
        Assert.Equal("Skipped", states["rehearsal-restore"]);
        Assert.Equal("Skipped", states["rehearsal-setup"]);
        Assert.Equal("Succeeded", states["rehearsal-cleanup"]);
        Assert.Contains($"[rehearsal] not enough room: ", log, StringComparison.Ordinal);
        Assert.Contains($"for the scratch venv ({venvKb * 1024} bytes, the size of {workdir}/venv)", log, StringComparison.Ordinal);
        Assert.Contains("nothing was made", log, StringComparison.Ordinal);
        // Nothing was made: no dump was started, no scratch database, no scratch directory, no rehearsal dump.
        Assert.DoesNotContain("pg_dump -Fc", log, StringComparison.Ordinal);
        Assert.DoesNotContain("creating the scratch database", log, StringComparison.Ordinal);
        Assert.Equal(0L, await ScratchDatabasesAsync(fractal));
        Assert.Equal("0", (await ssh.RunAsync($"ls -d {runs}/run-{id}-*-scratch 2>/dev/null | wc -l")).StandardOutput.Trim());
        Assert.Equal("0", await RehearsalCopy.LeftAsync(ssh, fractal, id, log));
    }

    [Fact]
    public async Task Rehearsal_OfATargetWithAServiceUser_RunsItsStepsAsThatUser_AndRemovesItsCopy()
    {
        var fractal = await TargetAsync(SshServer.ServiceUser);
        var workdir = await fractal.Host.AbsoluteDirectoryAsync();
        // As on a real host, the service user can read its installation (here the double lives in the SSH user's home, given absolutely).
        Assert.Equal(0, (await ssh.RunAsync($"chmod -R a+rX {workdir}")).ExitCode);
        await ChangeTargetAsync(fractal.TargetId, t => (t.WorkingDirectory, t.PythonPath) = (workdir, workdir + "/venv/bin/python"));

        using var api = ApiTokens.Client(_app.BaseUrl, _token);
        var id = await RehearseAndWaitAsync(api, fractal.TargetId);
        var run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{id}", TestContext.Current.CancellationToken);
        var log = await api.GetStringAsync($"/api/v1/runs/{id}/log", TestContext.Current.CancellationToken);
        Assert.True(run.GetProperty("state").GetString() == "Succeeded", $"{run}\n{log}");
        Assert.Contains($"[rehearsal] steps run as {SshServer.ServiceUser}", log, StringComparison.Ordinal);
        var home = (await ssh.RunAsync($"getent passwd {SshServer.ServiceUser} | cut -d: -f6")).StandardOutput.Trim();
        Assert.Contains($"[rehearsal] scratch directory {home}/.upgradeconsole/rehearsals/run-{id}-", log, StringComparison.Ordinal);
        Assert.Contains("[compare] 11 as predicted, 0 difference(s)", log, StringComparison.Ordinal);
        Assert.Contains($"{home}/upgradeconsole-backups/", run.GetProperty("backup").GetProperty("path").GetString(), StringComparison.Ordinal);

        Assert.Equal(0L, await ScratchDatabasesAsync(fractal));
        Assert.NotNull(RehearsalCopy.ScratchDirectory(log));
        Assert.Equal("0", await RehearsalCopy.LeftAsync(ssh, fractal, id, log, asUser: SshServer.ServiceUser));
        Assert.Equal("2.16.6", (await ssh.RunAsync($"{workdir}/venv/bin/python -m pip show fractal-server | sed -n 's/^Version: //p'")).StandardOutput.Trim());
    }

    private async Task<FractalTarget> TargetAsync(string? serviceUser = null)
    {
        _fractal = await FractalTarget.CreateAsync(_app, _admin, ssh, postgres, serviceUser: serviceUser);
        await _fractal.PrepareForUpgradeAsync(ssh);
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"ALTER ROLE \"{new NpgsqlConnectionStringBuilder(_fractal.DatabaseConnection).Username}\" CREATEDB", conn);
        await cmd.ExecuteNonQueryAsync();
        return _fractal;
    }

    /// <summary>A tmpfs of <paramref name="kilobytes"/> owned by the SSH user (owner-only, as step directories must be); unmounted at the end.</summary>
    private async Task<string> SmallFilesystemAsync(long kilobytes)
    {
        Assert.True(ProcessRunner.IsRoot, "mounting a small filesystem needs root (the tests run as root to make the sshd's users)");
        var dir = Directory.CreateTempSubdirectory("uc-room-").FullName;
        var uid = (await ProcessRunner.RunAsync("id", ["-u", ssh.User])).StandardOutput.Trim();
        var gid = (await ProcessRunner.RunAsync("id", ["-g", ssh.User])).StandardOutput.Trim();
        await ProcessRunner.RunAsync("mount", ["-t", "tmpfs", "-o", $"size={kilobytes}k,mode=0700,uid={uid},gid={gid}", "tmpfs", dir]);
        _mounts.Add(dir);
        return dir;
    }

    private async Task ChangeTargetAsync(int targetId, Action<UpgradeConsole.Web.Targets.Target> change)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var target = await db.Targets.SingleAsync(t => t.Id == targetId);
        change(target);
        await db.SaveChangesAsync();
    }

    private static async Task<int> RehearseAndWaitAsync(HttpClient api, int targetId)
    {
        using var started = await api.PostAsJsonAsync($"/api/v1/targets/{targetId}/rehearsals", new { runbook = Runbook }, TestContext.Current.CancellationToken);
        Assert.True(started.StatusCode == HttpStatusCode.Created, await started.Content.ReadAsStringAsync());
        var id = (await started.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken)).GetProperty("id").GetInt32();
        JsonElement run = default;
        await Eventually.TrueAsync(async () =>
        {
            run = await api.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{id}");
            return run.GetProperty("state").GetString() is not "Running";
        }, TimeSpan.FromMinutes(6), () => run.ToString());
        return id;
    }

    private async Task<long> ScratchDatabasesAsync(FractalTarget fractal)
    {
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_database WHERE starts_with(datname, @db || '_rehearsal_')", conn);
        cmd.Parameters.AddWithValue("db", new NpgsqlConnectionStringBuilder(fractal.DatabaseConnection).Database!);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    public async ValueTask DisposeAsync()
    {
        if (_fractal is not null)
        {
            await _fractal.DisposeAsync();
        }

        await _app.DisposeAsync();
        foreach (var mount in _mounts)
        {
            await ProcessRunner.RunAsync("umount", [mount], check: false);
            Directory.Delete(mount, recursive: true);
        }
    }
}
