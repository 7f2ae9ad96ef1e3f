using System.Security.Claims;
using System.Text.Json;
using UpgradeConsole.Core.EnvFiles;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Fractal;

/// <summary>What the Fractal phases do that is more than one script: the builtin steps and the scripts that need facts first.</summary>
internal static class FractalSteps
{
    private const string EnvFile = ".fractal_server.env";
    private const string OldEnvFile = ".fractal_server.env.old";

    /// <summary>What the plan recorded (fixed once the run is planned).</summary>
    public static RunPlanSnapshot Plan(PhaseContext c) =>
        JsonSerializer.Deserialize<RunPlanSnapshot>(c.Run.PlanJson, JsonSerializerOptions.Web) ?? new RunPlanSnapshot();

    private static string ServerPython(PhaseContext c) =>
        Plan(c).Python ?? c.Target.PythonPath ?? throw new InvalidOperationException("The server's Python is not known; set the target's Python path.");

    /// <summary>The target as the scripts need it, with the server's Python the plan found.</summary>
    public static FractalHostSettings Host(PhaseContext c) => FractalRuntime.HostSettings(c.Target, ServerPython(c));

    private static FractalContext Fractal(PhaseContext c) => c.SessionAs<FractalContext>();

    private static string InWorkdir(PhaseContext c, string name) => ShellWords.QuotePath(c.Target.WorkingDirectory.TrimEnd('/') + "/" + name);

    private static async Task<string> ReadAsync(PhaseContext c, string name)
    {
        var result = await c.Shell.RunAsync($"cat -- {InWorkdir(c, name)}", c.Cancellation, TimeSpan.FromSeconds(60));
        return result.ExitCode == 0 ? result.Output : throw new InvalidOperationException($"Cannot read {name}: {result.StandardError.Trim()}");
    }

    private static async Task<bool> ExistsAsync(PhaseContext c, string name) =>
        (await c.Shell.RunAsync($"test -f {InWorkdir(c, name)} && echo yes", c.Cancellation, TimeSpan.FromSeconds(30))).Output.Trim() == "yes";

    /// <summary>Writes a file in the working directory atomically (temp file + rename), keeping the mode of <paramref name="modeFrom"/>.</summary>
    private static async Task WriteAsync(PhaseContext c, string name, string content, string modeFrom)
    {
        var dir = ShellWords.QuotePath(c.Target.WorkingDirectory);
        var result = await c.Shell.RunAsync($"""
            set -e
            cd -- {dir}
            tmp=$(mktemp {ShellWords.Quote("." + name + ".XXXXXX")})
            printf '%s' {ShellWords.Quote(content)} > "$tmp"
            chmod --reference={ShellWords.Quote(modeFrom)} "$tmp" 2>/dev/null || chmod 600 "$tmp"
            mv -f -- "$tmp" {ShellWords.Quote(name)}
            """, c.Cancellation, TimeSpan.FromSeconds(60));
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"Could not write {name}: {result.StandardError.Trim()}");
        }
    }

    public static async Task<PhaseOutcome> EnvOldAsync(PhaseContext c)
    {
        var current = await ReadAsync(c, EnvFile);
        if (!EnvMigrator.Migrate(current, c.Run.OAuthClient).Changed && await ExistsAsync(c, OldEnvFile))
        {
            // The env file is already the new one (a retry after env-write): the .old copy must not be overwritten.
            await c.WriteAsync($"{EnvFile} is already in the 2.17.0 shape; keeping the existing {OldEnvFile}.");
            return PhaseOutcome.Done("kept");
        }

        // The env file needs an absolute path (~ means nothing to Fractal): expand it on the host.
        var python = (await c.Shell.RunAsync($"printf '%s' {ShellWords.QuotePath(ServerPython(c))}", c.Cancellation, TimeSpan.FromSeconds(30))).Output;
        var old = EnvMigrator.OldCopy(current, python);
        await WriteAsync(c, OldEnvFile, old, EnvFile);
        await c.WriteAsync($"Copied {EnvFile} to {OldEnvFile}" + (old.Length != current.Length ? $" and added FRACTAL_SLURM_WORKER_PYTHON={python}." : "."));
        return PhaseOutcome.Done();
    }

    public static async Task<RemoteScript> BackupAsync(PhaseContext c)
    {
        var run = c.Run;
        var fractal = Fractal(c);
        run.UserTablesChecksum ??= await fractal.Database.UserTablesChecksumAsync(c.Cancellation);
        await c.SaveAsync();
        var name = $"fractal-{fractal.Env.GetValueOrDefault("POSTGRES_DB")}-run{run.Id}-a{c.Phase.Attempt}.dump";
        return RecordingDump(c, FractalScripts.Backup(Host(c), name), "backup", backup =>
            PhaseOutcome.Done($"{backup.Path}, {backup.Size} bytes, SHA-256 {backup.Sha256[..12]}…, {backup.Milliseconds} ms") with
            {
                Facts = new { path = backup.Path, size = backup.Size, sha256 = backup.Sha256, milliseconds = backup.Milliseconds },
            });
    }

    /// <summary>A dump step with the Fractal server's database settings (<see cref="DumpSteps.Recording"/>).</summary>
    internal static RemoteScript RecordingDump(PhaseContext c, string script, string step, Func<BackupRecord, PhaseOutcome> done) =>
        DumpSteps.Recording(c, script, FractalScripts.PostgresEnvironment(Fractal(c).Env), step, done);

    public static async Task<PhaseOutcome> EnvWriteAsync(PhaseContext c)
    {
        var run = c.Run;
        var current = await ReadAsync(c, EnvFile);
        var migration = EnvMigrator.Migrate(current, run.OAuthClient);
        var kept = $"{EnvFile}.pre-{run.ToVersion}-run{run.Id}";
        if (!migration.Changed && await ExistsAsync(c, kept))
        {
            // This run's kept 2.16 file is there and the env file is already new: an earlier pass of this phase
            // (interrupted after the write) or of this run wrote it. What it changed is not lost with that pass:
            // it is the diff from the kept file, which was written (atomically) before the env file was.
            var before = EnvMigrator.Migrate(await ReadAsync(c, kept), run.OAuthClient);
            if (before.Changed && before.NewText == current)
            {
                migration = before;
            }
        }
        foreach (var warning in migration.Warnings)
        {
            await c.WriteAsync("warning: " + warning);
        }

        if (migration.Refused)
        {
            return PhaseOutcome.Failed(string.Join(" ", migration.Refusals) + $" {EnvFile} was not changed.");
        }

        if (!migration.Changed)
        {
            await c.WriteAsync($"{EnvFile} is already in the 2.17.0 shape.");
            return PhaseOutcome.Done("already migrated");
        }

        if (!await ExistsAsync(c, kept))
        {
            await WriteAsync(c, kept, current, EnvFile);
        }

        run.KeptEnvFile = kept;
        await c.SaveAsync();
        // Each change is in the log before the file changes (WriteAsync stores before it returns).
        var changes = migration.Changes.Select(change => $"{change.Kind} {change.Key}{(change.NewKey is null ? "" : " → " + change.NewKey)}: {change.Reason}").ToList();
        foreach (var change in changes)
        {
            await c.WriteAsync(change);
        }

        // Writing the same text again (a pass after an interruption) changes nothing.
        await WriteAsync(c, EnvFile, migration.NewText!, EnvFile);
        CrashPoints.Reached("changed:env-write");
        await c.WriteAsync($"Wrote {EnvFile}; the 2.16 version is kept as {kept}.");
        return PhaseOutcome.Done($"{changes.Count} change(s) applied; the 2.16 file is kept as {kept}") with
        {
            Facts = new { file = EnvFile, kept, changes },
        };
    }

    public static async Task<RemoteScript> VerifyFilesAsync(PhaseContext c)
    {
        var old = DotEnvFile.Parse(await ReadAsync(c, OldEnvFile)).Values();
        var files = new List<string> { OldEnvFile, EnvFile };
        foreach (var key in new[] { "FRACTAL_SLURM_CONFIG_FILE", "FRACTAL_PIXI_CONFIG_FILE" })
        {
            if (old.GetValueOrDefault(key) is { Length: > 0 } file)
            {
                files.Add(file);
            }
        }

        return new RemoteScript(FractalScripts.VerifyFiles(Host(c), files));
    }

    public static async Task<PhaseOutcome> PostChecksAsync(PhaseContext c)
    {
        var database = Fractal(c).Database;
        var plan = Plan(c);
        var problems = new List<string>();
        var head = await database.AlembicVersionAsync(c.Cancellation);
        await c.WriteAsync($"alembic_version: {head}");
        if (head != "83bc2ad3ffcc")
        {
            problems.Add($"alembic_version is {head}, not 83bc2ad3ffcc");
        }

        var (resources, unlinked) = await database.PostUpgradeAsync(plan.MigratedUserIds, c.Cancellation);
        await c.WriteAsync($"resources: {resources}");
        if (resources != 1)
        {
            problems.Add($"{resources} resources, expected 1");
        }

        await c.WriteAsync($"users expected to be migrated: {plan.MigratedUserIds.Count}; without a profile or project_dir: {unlinked.Count}");
        if (unlinked.Count > 0)
        {
            problems.Add("not migrated: " + string.Join(", ", unlinked));
        }

        foreach (var email in plan.LeftOutUsers)
        {
            await c.WriteAsync($"left out (no profile; cannot work in 2.17): {email}");
        }

        return problems.Count == 0 ? PhaseOutcome.Done() : PhaseOutcome.Failed(string.Join("; ", problems));
    }

    public static RemoteScript RestoreDatabase(PhaseContext c) =>
        c.Run.BackupPath is null
            ? RemoteScript.Refused("This run has no verified backup to restore.")
            : new RemoteScript(FractalScripts.RestoreDatabase(Host(c), c.Run.BackupPath, c.Run.BackupSha256), FractalScripts.PostgresEnvironment(Fractal(c).Env));

    public static async Task<PhaseOutcome> RestoreEnvAsync(PhaseContext c)
    {
        var kept = c.Run.KeptEnvFile;
        if (kept is null)
        {
            await c.WriteAsync($"{EnvFile} was not rewritten by this run; nothing to restore.");
            return PhaseOutcome.Done("nothing to restore");
        }

        await WriteAsync(c, EnvFile, await ReadAsync(c, kept), kept);
        await c.WriteAsync($"Restored {EnvFile} from {kept}.");
        return PhaseOutcome.Done();
    }

    public static async Task<PhaseOutcome> VerifyRestoreAsync(PhaseContext c)
    {
        var database = Fractal(c).Database;
        var run = c.Run;
        var head = await database.AlembicVersionAsync(c.Cancellation);
        var checksum = await database.UserTablesChecksumAsync(c.Cancellation);
        await c.WriteAsync($"alembic_version: {head}; user tables {(checksum == run.UserTablesChecksum ? "match" : "DIFFER from")} the pre-upgrade snapshot");
        return head == (Plan(c).AlembicHead ?? PreflightChecks.Head216) && checksum == run.UserTablesChecksum
            ? PhaseOutcome.Done()
            : PhaseOutcome.Failed($"After the restore alembic_version is {head} and the user tables {(checksum == run.UserTablesChecksum ? "match" : "do not match")} the snapshot.");
    }
}
