using System.Net;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>A planned Fractal upgrade whose <c>pip install</c> prints a line a second on the target: long enough to kill a dashboard during it.</summary>
public static partial class SlowPipRun
{
    /// <summary>Puts a Python in front of the target's that slows pip down (and counts its calls in <c>pip-calls</c>), then plans a run as the Admin; returns its id.</summary>
    public static async Task<int> PlanAsync(UpgradeConsoleApplicationFactory app, HttpClient admin, FractalTarget fractal, SshServer ssh, int lines)
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

        var plan = await admin.GetStringAsync($"/targets/{fractal.TargetId}/plan");
        using var planned = await admin.PostAsync($"/targets/{fractal.TargetId}/runs", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = HtmlForms.AntiforgeryToken(plan),
            ["runbook"] = RunbookPattern().Match(plan).Groups[1].Value,
        }));
        Assert.Equal(HttpStatusCode.Redirect, planned.StatusCode);
        return int.Parse(RunUrlPattern().Match(planned.Headers.Location!.OriginalString).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Posts a run action (start, retry…) from the run page's form, as a person would.</summary>
    public static async Task<HttpResponseMessage> ActAsync(HttpClient client, int runId, string action)
    {
        var page = await client.GetStringAsync($"/runs/{runId}");
        return await client.PostAsync($"/runs/{runId}/{action}", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = HtmlForms.AntiforgeryToken(page),
        }));
    }

    /// <summary>The run's state as its page shows it.</summary>
    public static async Task<string> StateAsync(HttpClient client, int runId) =>
        StatePattern().Match(await client.GetStringAsync($"/runs/{runId}")).Groups[1].Value;

    [GeneratedRegex("""name="runbook" value="([^"]*)""")]
    private static partial Regex RunbookPattern();

    [GeneratedRegex("""/runs/([0-9]+)$""")]
    private static partial Regex RunUrlPattern();

    [GeneratedRegex("""data-testid="run-state"[^>]*>([A-Za-z]+)<""")]
    private static partial Regex StatePattern();
}
