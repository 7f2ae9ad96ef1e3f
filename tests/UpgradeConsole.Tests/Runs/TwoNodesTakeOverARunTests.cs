using System.Diagnostics;
using Npgsql;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// Two real dashboard processes on one PostgreSQL. The node whose claim holds the running <c>pip install</c>
/// is killed (SIGKILL); the other node takes the phase over once the claim runs out, reattaches to the step
/// still running on the host, and finishes the run with every line of it stored once.
/// </summary>
public sealed class TwoNodesTakeOverARunTests(SshServer ssh, PostgresServer postgres) : IAsyncDisposable
{
    private const int SlowLines = 12;
    private readonly string _dataA = Directory.CreateTempSubdirectory("uc-node-a-").FullName;
    private readonly string _dataB = Directory.CreateTempSubdirectory("uc-node-b-").FullName;
    private FractalTarget? _fractal;

    [Fact]
    public async Task TheOtherNode_TakesTheRunOver_WithinTheLeaseAndARecoveryPeriod()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        var settings = new Dictionary<string, string> { ["Database:Provider"] = "PostgreSQL", ["ConnectionStrings:UpgradeConsole"] = connectionString };
        int runId;
        string token;
        await using (var app = new UpgradeConsoleApplicationFactory(DatabaseProvider.PostgreSQL, connectionString, _dataA))
        {
            var admin = await app.CreateFirstAdminAsync();
            _fractal = await FractalTarget.CreateAsync(app, admin, ssh, postgres);
            await _fractal.PrepareForUpgradeAsync(ssh);
            runId = await SlowPipRun.PlanAsync(app, _fractal, ssh, SlowLines);
            token = await ApiTokens.CreateAsync(app, UpgradeConsoleApplicationFactory.AdminEmail, "starts the run", "Operator");
        }

        await using var a = await DashboardProcess.StartAsync(_dataA, settings);
        await using var b = await DashboardProcess.StartAsync(_dataB, settings);
        var clientA = await a.SignInAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        var clientB = await b.SignInAsync(UpgradeConsoleApplicationFactory.AdminEmail, UpgradeConsoleApplicationFactory.AdminPassword);
        using var start = await SlowPipRun.ActAsync(a.BaseUrl, token, runId, "start");
        await Eventually.TrueAsync(async () => (await clientA.GetStringAsync($"/runs/{runId}/log.txt")).Contains("slow-pip line 3", StringComparison.Ordinal),
            TimeSpan.FromMinutes(3), () => a.Output + b.Output);

        // Whichever node's worker took the phase holds its claim: that one dies.
        var owner = await LeaseOwnerAsync(connectionString, runId);
        var (driving, other, otherClient) = owner.Contains($":{a.ProcessId}:", StringComparison.Ordinal) ? (a, b, clientB) : (b, a, clientA);
        Assert.Contains($":{driving.ProcessId}:", owner, StringComparison.Ordinal);
        await driving.KillAsync();
        var killed = Stopwatch.StartNew();

        await Eventually.TrueAsync(async () => (await otherClient.GetStringAsync($"/runs/{runId}/log.txt")).Contains("continuing after an interruption", StringComparison.Ordinal),
            TimeSpan.FromMinutes(2), () => other.Output);
        var takeover = killed.Elapsed;
        TestContext.Current.TestOutputHelper?.WriteLine($"the other node continued the phase {takeover.TotalSeconds:0.0} s after the kill");
        // Lease 30 s + recovery every 15 s + schedule polling 5 s, with room for a loaded machine.
        Assert.True(takeover < TimeSpan.FromSeconds(90), $"took {takeover.TotalSeconds:0.0} s");
        Assert.Contains($":{other.ProcessId}:", await LeaseOwnerAsync(connectionString, runId), StringComparison.Ordinal);

        var state = "";
        await Eventually.TrueAsync(async () => (state = await SlowPipRun.StateAsync(otherClient, runId)) is not ("Running" or "Planned"), TimeSpan.FromMinutes(4), () => other.Output);
        var log = await otherClient.GetStringAsync($"/runs/{runId}/log.txt");
        Assert.True(state == "WaitingForChecklist", $"run is {state}\n{log}\n{other.Output}");
        var lines = log.Split('\n');
        for (var i = 1; i <= SlowLines; i++)
        {
            Assert.Equal(1, lines.Count(l => l == $"slow-pip line {i}"));
        }

        Assert.Single(lines, l => l == "Successfully installed fractal-server-2.17.0");
        Assert.Equal("called", (await ssh.RunAsync($"cat {await _fractal.Host.AbsoluteDirectoryAsync()}/pip-calls")).StandardOutput.Trim());
    }

    private static async Task<string> LeaseOwnerAsync(string connectionString, int runId)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var query = new NpgsqlCommand("""SELECT "LeaseOwner" FROM "RunPhases" WHERE "RunId" = @run AND "Key" = 'pip-install'""", connection);
        query.Parameters.AddWithValue("run", runId);
        return (string)(await query.ExecuteScalarAsync())!;
    }

    public async ValueTask DisposeAsync()
    {
        if (_fractal is not null)
        {
            await _fractal.DisposeAsync();
        }

        foreach (var data in new[] { _dataA, _dataB })
        {
            // A killed node's ssh ControlMaster and agent live under its data directory: end them too.
            await ProcessRunner.RunAsync("pkill", ["-f", data], check: false);
            Directory.Delete(data, recursive: true);
        }
    }
}
