using System.Security.Claims;
using UpgradeConsole.Core.EnvFiles;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Fractal;

/// <summary>fractal-server, plugged in: its runbooks and its users page.</summary>
public sealed class FractalProduct : IProduct
{
    public const string ProductId = "fractal-server";

    public static FractalProduct Instance { get; } = new();

    public string Id => ProductId;

    public string Title => "fractal-server";

    public IReadOnlyList<RunbookDefinition> Runbooks => FractalRunbooks.All;

    public IReadOnlyList<ProductPage> TargetPages { get; } = [new("Users", "bi-people", "/targets/{id}/users", "target-users")];

    /// <summary>The plan page's Fractal part: the users who will and will not be migrated, the env file's diff.</summary>
    public Type? PlanSection => typeof(FractalPlanSection);
}

/// <summary>What the Fractal phases' previews need from the plan: the target's settings with the server's Python.</summary>
public sealed record FractalPlanFacts(FractalHostSettings Host);

/// <summary>What the plan recorded for the run to use later (no secrets).</summary>
public sealed record RunPlanSnapshot
{
    public string? Python { get; init; }

    public IReadOnlyList<int> MigratedUserIds { get; init; } = [];

    public IReadOnlyList<string> LeftOutUsers { get; init; } = [];

    public long? DatabaseSize { get; init; }

    /// <summary>The alembic head before the upgrade: where a restore must bring the database back.</summary>
    public string? AlembicHead { get; init; }

    /// <summary>Whether the optional data migration (update-db-data) was chosen for a release upgrade.</summary>
    public bool DataMigration { get; init; }

    /// <summary>What the plan predicts for every user (a rehearsal compares update-db-data's result with it).</summary>
    public IReadOnlyList<PredictedUser> Predicted { get; init; } = [];

    /// <summary>The 2.17 resource type the plan predicts (from the 2.16 backend).</summary>
    public string? ResourceType { get; init; }
}

/// <summary>Fractal's services: a session on the target (env file + database), its preflight, what the plan finds there.</summary>
public sealed class FractalRuntime(FractalAccess access, PreflightService preflight) : IProductRuntime, IProductDiscovery
{
    /// <summary>The target page's "Look at the server": the env file, the installed version, the Python, what /api/alive/ says.</summary>
    public async Task<DiscoveryRecord> DiscoverTargetAsync(Target target, UpgradeConsole.Core.Remote.IRemoteShell shell, DateTimeOffset at, CancellationToken ct) =>
        new(at, await FractalDiscovery.DiscoverAsync(shell, TargetService.Location(target), ct), null);

    public static FractalHostSettings HostSettings(Target target, string python) => new(
        target.WorkingDirectory,
        python,
        target.ServerUrl,
        target.StopCommand,
        target.StartCommand,
        target.StatusCommand,
        target.BackupDirectory,
        (target.PipOptions ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries));

    public async Task<IProductSession> OpenSessionAsync(Target target, CancellationToken ct) => await access.OpenAsync(target, ct);

    public Task<PreflightRun> PreflightAsync(int targetId, ClaimsPrincipal actor, CancellationToken ct, int? forRun = null, Func<string, Task>? onRetry = null) =>
        preflight.RunAsync(targetId, actor, ct, forRun, onRetry);

    public Task<PreflightRun?> LatestPreflightAsync(int targetId, CancellationToken ct) => preflight.LatestAsync(targetId, ct);

    public async Task<Plan> DiscoverPlanAsync(Target target, RunbookDefinition runbook, PlanOptions options, CancellationToken ct)
    {
        var to = runbook.FixedToVersion ?? options.ToVersion?.Trim() ?? "";
        if (!Pep440.IsValid(to) || !to.Contains('.', StringComparison.Ordinal))
        {
            return new Plan { Error = $"'{to}' is not a fractal-server version such as 2.17.1 (PEP 440, normalized)." };
        }

        try
        {
            // The plan page is a person's request: it waits its turn in the target's queue.
            await using var context = await access.OpenForPeopleAsync(target, ct);
            // The env file as the context read it: not read again (twice) over SSH.
            var discovery = await FractalDiscovery.DiscoverAsync(context.Shell, TargetService.Location(target), context.EnvText, ct);
            if (runbook.FixedToVersion is null && (discovery.InstalledVersion is null || discovery.InstalledVersion == to))
            {
                return new Plan
                {
                    Error = discovery.InstalledVersion is null ? "pip cannot say which fractal-server is installed, so there is nothing to upgrade from." : $"fractal-server {to} is already installed.",
                    Target = target,
                    Runbook = runbook,
                };
            }

            if (discovery.InstalledVersion is { } installed && !Pep440.IsValid(installed))
            {
                // It would reach the rollback's commands: only a well-formed version does.
                return new Plan { Error = $"pip reports fractal-server version '{installed}', which is not a PEP 440 version; check the target's package metadata.", Target = target, Runbook = runbook };
            }

            var users = MigrationRules.Classify(await context.Database.LoadUsersAsync(ct), context.Backend);
            var size = await context.Database.DatabaseSizeAsync(ct);
            var envText = context.EnvText;
            var migration = runbook == FractalRunbooks.Upgrade2170 && envText is not null ? EnvMigrator.Migrate(envText, options.OAuthClient) : null;
            var python = discovery.Python ?? target.PythonPath;
            var head = await context.Database.AlembicVersionAsync(ct);
            return new Plan
            {
                Target = target,
                Runbook = runbook,
                FromVersion = discovery.InstalledVersion,
                ToVersion = to,
                Facts = new FractalPlanFacts(HostSettings(target, python ?? "<python>")),
                EnvMigration = migration,
                EnvDiff = migration?.NewText is { } text ? EnvMigrator.Diff(envText!, text) : null,
                Users = users,
                DatabaseSize = size,
                BackupDirectory = target.BackupDirectory,
                Snapshot = new RunPlanSnapshot
                {
                    Python = python,
                    MigratedUserIds = users.Where(u => u.Outcome == MigrationOutcome.Migrated).Select(u => u.User.Id).ToList(),
                    LeftOutUsers = users.Where(u => u.Outcome == MigrationOutcome.LeftOut).Select(u => u.User.Email).ToList(),
                    DatabaseSize = size,
                    AlembicHead = head,
                    DataMigration = options.DataMigration,
                    Predicted = users.Select(PredictedUser.From).ToList(),
                    ResourceType = MigrationRules.ResourceType(context.Backend),
                },
            };
        }
        catch (Exception ex) when (ex is InvalidOperationException or SshConnectionException or HostKeyNotPinnedException or Npgsql.NpgsqlException or TimeoutException)
        {
            return new Plan { Error = "The plan needs the target: " + ex.Message, Target = target, Runbook = runbook };
        }
    }
}
