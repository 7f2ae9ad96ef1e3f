using System.Security.Claims;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Fractal;

/// <summary>The users page's data: every user with what 2.17.0 will do with them.</summary>
public sealed record UsersView(Target Target, string Backend, IReadOnlyList<UserVerdict> Verdicts)
{
    public int Count(MigrationOutcome outcome) => Verdicts.Count(v => v.Outcome == outcome);

    /// <summary>The counts over all users, worked out once per read.</summary>
    public UsersCounts Counts => _counts ??= UsersCounts.Of(Verdicts);

    private UsersCounts? _counts;

    // One read answers many pages (every sort, filter and page within a minute): each filter and sort's order, without
    // a search, is worked out once per read (4 filters × 4 sorts × 2 directions at most); a search is ordered each time.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Filter, string Sort, bool Descending), UserVerdict[]> _ordered = new();

    /// <summary>The users <paramref name="query"/> matches, in its order (every page of them).</summary>
    public IReadOnlyList<UserVerdict> Matching(UsersQuery query) =>
        string.IsNullOrWhiteSpace(query.Search) && UsersQuery.Filters.Contains(query.Filter) && UsersQuery.Sorts.Contains(query.Sort)
            ? _ordered.GetOrAdd((query.Filter, query.Sort, query.Descending), _ => [.. query.Apply(Verdicts)])
            : [.. query.Apply(Verdicts)];
}

/// <summary>How many users each outcome holds, over all users (not only the page shown).</summary>
public sealed record UsersCounts(int All, int Blocks, int LeftOut, int Migrated)
{
    public static UsersCounts Of(IReadOnlyCollection<UserVerdict> verdicts) => new(
        verdicts.Count,
        verdicts.Count(v => v.Outcome == MigrationOutcome.Blocks),
        verdicts.Count(v => v.Outcome == MigrationOutcome.LeftOut),
        verdicts.Count(v => v.Outcome == MigrationOutcome.Migrated));
}

/// <summary>
/// One page of the users grid: the rows shown, how many match the filter, and the counts. This is all an
/// open tab keeps; the full list lives only for the call that classifies it.
/// </summary>
public sealed record UsersSlice(int TargetId, string TargetName, string Backend, UsersCounts Counts, int Matching, IReadOnlyList<UserVerdict> Items);

/// <summary>What the API's PATCH of one user changes (null: unchanged).</summary>
public sealed record UserFix(bool CreateSettingsRow, bool? IsActive, bool? IsVerified, string? ProjectDir, string? SlurmUser);

/// <summary>
/// The outcome of <see cref="FractalUsersService.FixAsync"/>: no such user (<see cref="Before"/> null), the first refused
/// change and the field it concerned, or the user's verdict after every change.
/// </summary>
public sealed record UserFixResult(FractalUser? Before, UserVerdict? After, (string Field, UserChange Change)? Refused);

/// <summary>A proposed project_dir for one user (pattern preview).</summary>
public sealed record ProjectDirProposal(FractalUser User, string? Value, string? Problem);

/// <summary>
/// Reads a Fractal target's users and applies the fixes an admin makes before the upgrade. Every
/// change is audited with its before and after values. Each call for a person first checks the role
/// they hold now, in the database (<see cref="UserAccess"/>): the users page is an open tab that may
/// outlive a demotion, and the API's token may carry a lower role than its owner.
/// </summary>
public sealed class FractalUsersService(TargetService targets, FractalAccess access, AuditLog audit, TargetReads reads, IServiceScopeFactory scopes, UserAccess people)
{
    /// <summary>
    /// The page of users a grid shows. The outcome of one user depends on the others (a shared username
    /// with other SSH settings blocks both), so every call reads and classifies the whole table from the
    /// target's database (one read shared by everyone asking within seconds, <see cref="TargetReads"/>: a grid's
    /// sort, filter and page clicks reuse it), then filters, sorts and cuts the page here; only the page leaves.
    /// </summary>
    public async Task<UsersSlice> PageAsync(int targetId, UsersQuery query, ClaimsPrincipal viewer, CancellationToken ct, TimeSpan? orOlderUpTo = null)
    {
        ArgumentNullException.ThrowIfNull(query);
        await people.RequireAsync(viewer, Roles.Viewer);
        var view = await LoadAsync(targetId, ct, orOlderUpTo);
        var matching = view.Matching(query);
        var size = Math.Clamp(query.PageSize, 1, 1000);
        var pages = Math.Max(1, (matching.Count + size - 1) / size);
        var page = Math.Clamp(query.Page, 1, pages);
        return new UsersSlice(view.Target.Id, view.Target.Name, view.Backend, view.Counts, matching.Count,
            [.. matching.Skip((page - 1) * size).Take(size)]);
    }

    /// <summary>
    /// The target's users with their verdicts: one read over SSH answers everyone asking at about the same time
    /// (<see cref="TargetReads"/>), in a scope of its own so that no caller's leaving ends it for the others.
    /// </summary>
    public async Task<UsersView> LoadAsync(int targetId, CancellationToken ct, TimeSpan? orOlderUpTo = null)
    {
        return await reads.SharedAsync(targetId, UsersRead, async readCt =>
        {
            await using var scope = scopes.CreateAsyncScope();
            return await scope.ServiceProvider.GetRequiredService<FractalUsersService>().ReadAsync(targetId, readCt);
        }, ct, orOlderUpTo);
    }

    /// <summary>The key of the users read in <see cref="TargetReads"/> (and in its <see cref="TargetReads.Refreshed"/>).</summary>
    public const string UsersRead = "fractal.users";

    private async Task<UsersView> ReadAsync(int targetId, CancellationToken ct)
    {
        await using var context = await OpenAsync(targetId, ct);
        var users = await context.Database.LoadUsersAsync(ct);
        return new UsersView(context.Target, context.Backend, MigrationRules.Classify(users, context.Backend));
    }

    public async Task<IReadOnlyList<UserChange>> SetActiveVerifiedAsync(int targetId, IReadOnlyList<(int Id, string Version)> users, bool value, ClaimsPrincipal actor, CancellationToken ct)
    {
        await people.RequireAsync(actor, Roles.Operator);
        await using var context = await OpenAsync(targetId, ct);
        var results = new List<UserChange>();
        foreach (var (id, version) in users)
        {
            var change = await context.Database.SetActiveVerifiedAsync(id, version, value, value, ct);
            await RecordAsync(actor, targetId, value ? "fractal.user.activate" : "fractal.user.deactivate", change, ct);
            results.Add(change);
        }

        return results;
    }

    /// <summary>Sets is_active and is_verified of one user (the API may set them apart; the page sets both).</summary>
    public async Task<UserChange> SetFlagsAsync(int targetId, int id, string version, bool active, bool verified, ClaimsPrincipal actor, CancellationToken ct)
    {
        await people.RequireAsync(actor, Roles.Operator);
        await using var context = await OpenAsync(targetId, ct);
        var change = await context.Database.SetActiveVerifiedAsync(id, version, active, verified, ct);
        await RecordAsync(actor, targetId, FlagsAction(active, verified), change, ct);
        return change;
    }

    public async Task<UserChange> SetProjectDirAsync(int targetId, int id, string version, string value, ClaimsPrincipal actor, CancellationToken ct)
    {
        await people.RequireAsync(actor, Roles.Operator);
        await using var context = await OpenAsync(targetId, ct);
        var change = await context.Database.SetProjectDirAsync(id, version, value, ct);
        await RecordAsync(actor, targetId, "fractal.user.project-dir", change, ct);
        return change;
    }

    public async Task<UserChange> SetSlurmUserAsync(int targetId, int id, string version, string value, ClaimsPrincipal actor, CancellationToken ct)
    {
        await people.RequireAsync(actor, Roles.Operator);
        await using var context = await OpenAsync(targetId, ct);
        var change = await context.Database.SetSlurmUserAsync(id, version, value, ct);
        await RecordAsync(actor, targetId, "fractal.user.slurm-user", change, ct);
        return change;
    }

    public async Task<UserChange> CreateSettingsRowAsync(int targetId, int id, string version, ClaimsPrincipal actor, CancellationToken ct)
    {
        await people.RequireAsync(actor, Roles.Operator);
        await using var context = await OpenAsync(targetId, ct);
        var change = await context.Database.CreateSettingsRowAsync(id, version, ct);
        await RecordAsync(actor, targetId, "fractal.user.settings-row", change, ct);
        return change;
    }

    /// <summary>
    /// One person's fix of one user as the API sends it (issue 17, item 9): the target is opened once (its env file read,
    /// the forward to its database made) for reading the user, each change in order (each audited, each guarded by the
    /// version the one before left; the first refusal stops) and reading the user's verdict after.
    /// </summary>
    public async Task<UserFixResult> FixAsync(int targetId, int userId, string version, UserFix fix, ClaimsPrincipal actor, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(fix);
        await people.RequireAsync(actor, Roles.Operator);
        await using var context = await OpenAsync(targetId, ct);
        var current = (await context.Database.LoadUsersAsync(ct)).FirstOrDefault(u => u.Id == userId);
        if (current is null)
        {
            return new UserFixResult(null, null, null);
        }

        var steps = new List<(string Field, string Action, Func<string, Task<UserChange>> Apply)>();
        if (fix.CreateSettingsRow)
        {
            steps.Add(("createSettingsRow", "fractal.user.settings-row", v => context.Database.CreateSettingsRowAsync(userId, v, ct)));
        }

        if (fix.IsActive is not null || fix.IsVerified is not null)
        {
            var (active, verified) = (fix.IsActive ?? current.IsActive, fix.IsVerified ?? current.IsVerified);
            steps.Add(("isActive", FlagsAction(active, verified), v => context.Database.SetActiveVerifiedAsync(userId, v, active, verified, ct)));
        }

        if (fix.ProjectDir is not null)
        {
            steps.Add(("projectDir", "fractal.user.project-dir", v => context.Database.SetProjectDirAsync(userId, v, fix.ProjectDir, ct)));
        }

        if (fix.SlurmUser is not null)
        {
            steps.Add(("slurmUser", "fractal.user.slurm-user", v => context.Database.SetSlurmUserAsync(userId, v, fix.SlurmUser, ct)));
        }

        foreach (var (field, action, apply) in steps)
        {
            var change = await apply(version);
            await RecordAsync(actor, targetId, action, change, ct);
            if (!change.Applied)
            {
                return new UserFixResult(current, null, (field, change));
            }

            version = change.After!.Version;
        }

        var after = MigrationRules.Classify(await context.Database.LoadUsersAsync(ct), context.Backend).First(v => v.User.Id == userId);
        return new UserFixResult(current, after, null);
    }

    private static string FlagsAction(bool active, bool verified) =>
        (active, verified) switch { (true, true) => "fractal.user.activate", (false, false) => "fractal.user.deactivate", _ => "fractal.user.flags" };

    /// <summary>Every value a project_dir pattern would give, for the admin to read before applying.</summary>
    public async Task<IReadOnlyList<ProjectDirProposal>> PreviewPatternAsync(int targetId, string pattern, bool onlyMissing, ClaimsPrincipal actor, CancellationToken ct)
    {
        await people.RequireAsync(actor, Roles.Operator);
        var view = await LoadAsync(targetId, ct);
        return view.Verdicts
            .Where(v => v.User.IsActive && v.User.IsVerified)
            .Where(v => !onlyMissing || ProjectDirRule.MigrationProblem(v.User.ProjectDir) is not null)
            .Select(v =>
            {
                var value = ProjectDirRule.Apply(pattern, v.User);
                var problem = value is null ? "a placeholder has no value for this user" : ProjectDirRule.Check(value);
                if (problem is null && v.User.SettingsId is null)
                {
                    problem = "has no settings row (create it first)";
                }

                return new ProjectDirProposal(v.User, value, problem);
            })
            .ToList();
    }

    /// <summary>
    /// Whether the project_dir exists on the target; where steps run through sudo, also whether the
    /// user's slurm_user can enter it.
    /// </summary>
    public async Task<string> CheckOnHostAsync(int targetId, int id, ClaimsPrincipal actor, CancellationToken ct)
    {
        await people.RequireAsync(actor, Roles.Operator);
        await using var context = await OpenAsync(targetId, ct);
        var user = (await context.Database.LoadUsersAsync(ct)).FirstOrDefault(u => u.Id == id);
        if (user?.ProjectDir is not { Length: > 0 } dir || ProjectDirRule.Check(dir) is not null)
        {
            return "No valid project_dir to check.";
        }

        var quoted = ShellWords.Quote(dir.Trim());
        var exists = await context.Shell.RunAsync($"if [ -d {quoted} ]; then echo yes; else echo no; fi", ct, TimeSpan.FromSeconds(30));
        if (exists.Output.Trim() != "yes")
        {
            return $"{dir} does not exist on {context.Target.Host}.";
        }

        if (context.Target.ServiceUser is null || string.IsNullOrWhiteSpace(user.SlurmUser) || !HostNames.IsValidUser(user.SlurmUser))
        {
            return $"{dir} exists on {context.Target.Host}.";
        }

        var asUser = await context.Shell.RunAsync(
            $"if sudo -n -u {ShellWords.Quote(user.SlurmUser)} test -r {quoted} -a -x {quoted} 2>/dev/null; then echo yes; else echo no; fi", ct, TimeSpan.FromSeconds(30));
        return asUser.Output.Trim() == "yes"
            ? $"{dir} exists and {user.SlurmUser} can enter it."
            : $"{dir} exists, but {user.SlurmUser} cannot enter it (or sudo to {user.SlurmUser} is not allowed).";
    }

    private async Task<FractalContext> OpenAsync(int targetId, CancellationToken ct)
    {
        var target = await targets.FindAsync(targetId, ct) ?? throw new InvalidOperationException("No such target.");
        return await access.OpenForPeopleAsync(target, ct);
    }

    private Task RecordAsync(ClaimsPrincipal actor, int targetId, string action, UserChange change, CancellationToken ct)
    {
        reads.Forget(targetId);
        return audit.RecordAsync(actor, action, targetId, change.Before?.Email, new
        {
            userId = change.Before?.Id,
            change.Applied,
            change.Conflict,
            change.Error,
            before = Snapshot(change.Before),
            after = change.Applied ? Snapshot(change.After) : null,
        }, ct);
    }

    private static object? Snapshot(FractalUser? u) => u is null ? null : new
    {
        u.IsActive,
        u.IsVerified,
        u.SettingsId,
        u.ProjectDir,
        u.SlurmUser,
    };
}
