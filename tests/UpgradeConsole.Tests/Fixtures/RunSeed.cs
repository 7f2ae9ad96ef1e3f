using System.Net;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>Runs put straight into the dashboard's database, for tests and benchmarks of the log pipeline.</summary>
public static class RunSeed
{
    /// <summary>
    /// A target (never connected to) and a running release run with the given phases, held by the test: its
    /// phases carry a claim for a day, so the dashboard's recovery job leaves the run to the test.
    /// </summary>
    public static Task<(int RunId, List<RunPhase> Phases)> AddRunningRunAsync(
        IServiceProvider services, DateTimeOffset? startedAt = null, params (string Key, string Title, PhaseState State)[] phases) =>
        AddAsync(services, startedAt, held: true, phases);

    /// <summary>The same run held by nobody: the dashboard's phase jobs may claim it (the Hangfire benchmark).</summary>
    public static Task<(int RunId, List<RunPhase> Phases)> AddUnheldRunningRunAsync(
        IServiceProvider services, params (string Key, string Title, PhaseState State)[] phases) =>
        AddAsync(services, null, held: false, phases);

    private static async Task<(int RunId, List<RunPhase> Phases)> AddAsync(
        IServiceProvider services, DateTimeOffset? startedAt, bool held, (string Key, string Title, PhaseState State)[] phases)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var target = new Target { Name = "seeded-" + Guid.NewGuid().ToString("N")[..8], Host = "127.0.0.1", SshUser = "nobody", WorkingDirectory = "/srv/fractal" };
        db.Targets.Add(target);
        await db.SaveChangesAsync();
        var run = new Run
        {
            TargetId = target.Id,
            RunbookId = UpgradeConsole.Web.Fractal.FractalRunbooks.ReleaseId,
            FromVersion = "2.16.6",
            ToVersion = "2.16.7",
            State = RunState.Running,
            StartedAt = startedAt,
            PlannedBy = "test",
            PlannedAt = TimeProvider.System.GetUtcNow(),
            Phases = (phases.Length == 0 ? [("pip-install", "Install", PhaseState.Running)] : phases)
                .Select((p, i) => new RunPhase
                {
                    Index = i,
                    Key = p.Key,
                    Title = p.Title,
                    State = p.State,
                    LeaseOwner = held ? "the test" : null,
                    LeaseExpiresAt = held ? TimeProvider.System.GetUtcNow().UtcDateTime.AddDays(1) : null,
                }).ToList(),
        };
        db.Runs.Add(run);
        await db.SaveChangesAsync();
        return (run.Id, run.Phases.OrderBy(p => p.Index).ToList());
    }

    /// <summary>
    /// A planned (not started) release run on a new target that is never connected to, with the target's
    /// maintenance windows and time zone; its phases are those of a plan (nothing claimed).
    /// </summary>
    public static async Task<(int RunId, int TargetId)> AddPlannedRunAsync(IServiceProvider services, string? maintenanceWindows = null, string? timeZone = null, string plannedBy = "test")
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var target = new Target
        {
            Name = "planned-" + Guid.NewGuid().ToString("N")[..8], Host = "127.0.0.1", SshUser = "nobody", WorkingDirectory = "/srv/fractal",
            MaintenanceWindows = maintenanceWindows, TimeZone = timeZone,
        };
        db.Targets.Add(target);
        await db.SaveChangesAsync();
        var run = new Run
        {
            TargetId = target.Id,
            ActiveTargetId = target.Id,
            RunbookId = UpgradeConsole.Web.Fractal.FractalRunbooks.ReleaseId,
            FromVersion = "2.16.6",
            ToVersion = "2.16.7",
            State = RunState.Planned,
            PlannedBy = plannedBy,
            PlannedAt = TimeProvider.System.GetUtcNow(),
            Phases = [new RunPhase { Index = 0, Key = "preflight", Title = "Preflight", State = PhaseState.Pending }],
        };
        db.Runs.Add(run);
        await db.SaveChangesAsync();
        return (run.Id, target.Id);
    }

    /// <summary>The cookies of a user signed in through the login form (for hub connections).</summary>
    public static async Task<CookieContainer> SignInCookiesAsync(string baseUrl, string email, string password)
    {
        var cookies = new CookieContainer();
        using var client = new HttpClient(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false }) { BaseAddress = new Uri(baseUrl) };
        var login = await client.PostFormAsync("/account/login", "login", new() { ["Input.Email"] = email, ["Input.Password"] = password });
        await login.ExpectRedirectAsync("/");
        return cookies;
    }
}
