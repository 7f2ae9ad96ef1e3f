using System.Net;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>A planned Fractal upgrade whose <c>pip install</c> prints a line a second on the target: long enough to kill a dashboard during it.</summary>
public static partial class SlowPipRun
{
    /// <summary>Puts a Python in front of the target's that slows pip down (and counts its calls in <c>pip-calls</c>), then plans a run as the Admin; returns its id.</summary>
    public static async Task<int> PlanAsync(UpgradeConsoleApplicationFactory app, FractalTarget fractal, SshServer ssh, int lines)
    {
        var home = await fractal.Host.AbsoluteDirectoryAsync();
        var venvBin = $"{home}/venv/bin";
        await fractal.Host.WriteFileAsync("venv/bin/python-slow", $$"""
            #!/bin/bash
            if [ "${1:-}" = "-m" ] && [ "${2:-}" = "pip" ] && [ "${3:-}" = "install" ]; then
              echo called >> {{home}}/pip-calls
              for i in $(seq 1 {{lines}}); do echo "slow-pip line $i"; sleep 1; done
            fi
            exec "$(dirname "$0")/python" "$@"
            """);
        Assert.Equal(0, (await ssh.RunAsync($"chmod 755 {venvBin}/python-slow")).ExitCode);
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var target = await db.Targets.SingleAsync(t => t.Id == fractal.TargetId);
            target.PythonPath = $"{venvBin}/python-slow";
            await db.SaveChangesAsync();
        }

        return await PlanAsAdminAsync(app, fractal.TargetId);
    }

    /// <summary>Plans the first runbook on the target as the first Admin, through the plan page's service (its role check and audit event).</summary>
    public static async Task<int> PlanAsAdminAsync(UpgradeConsoleApplicationFactory app, int targetId)
    {
        ArgumentNullException.ThrowIfNull(app);
        var runbook = app.Services.GetRequiredService<RunbookCatalog>().All[0].Id;
        var result = await app.AsAsync<RunService, RunResult>(UpgradeConsoleApplicationFactory.AdminEmail,
            (runs, actor) => runs.PlanAsync(targetId, runbook, null, null, new Dictionary<string, string>(), actor, CancellationToken.None));
        Assert.True(result.Succeeded, "Planning failed: " + result.Error);
        return result.RunId!.Value;
    }

    /// <summary>
    /// Starts a run (or another action without a body) through the REST API with <paramref name="token"/>: a dashboard in
    /// another process has no form to post, and the run page's buttons act through the same service.
    /// </summary>
    public static async Task<HttpResponseMessage> ActAsync(string baseUrl, string token, int runId, string action)
    {
        using var api = ApiTokens.Client(baseUrl, token);
        var response = await api.PostAsync($"/api/v1/runs/{runId}/{action}", null);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{action} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return response;
    }

    /// <summary>The run's state as its page shows it.</summary>
    public static async Task<string> StateAsync(HttpClient client, int runId) =>
        StatePattern().Match(await client.GetStringAsync($"/runs/{runId}")).Groups[1].Value;

    [GeneratedRegex("""data-testid="run-state"[^>]*>([A-Za-z]+)<""")]
    private static partial Regex StatePattern();
}
