using System.Text.RegularExpressions;
using UpgradeConsole.Core.EnvFiles;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Fractal;

/// <summary>
/// How a Fractal runbook is rehearsed (issue 18): a verified dump (fresh, or a recent one of an earlier run),
/// restored into <c>&lt;db&gt;_rehearsal_&lt;run&gt;</c> on the same server, a scratch directory with a venv and env
/// files pointing at it; then the runbook's own rehearsable phases (pip-install into the scratch venv, set-db,
/// update-db-data in the scratch directory); then update-db-data's result against the plan's prediction; then
/// the cleanup, which runs also after a failure. Nothing here touches the service, the installed package,
/// the env file or the production database (it is only dumped).
/// </summary>
internal static partial class FractalRehearsal
{
    private const string EnvFile = ".fractal_server.env";

    /// <summary>The old env's keys naming JSON files that update-db-data reads (relative ones resolve against its directory).</summary>
    private static readonly string[] ConfigFileKeys = ["FRACTAL_SLURM_CONFIG_FILE", "FRACTAL_PIXI_CONFIG_FILE", "FRACTAL_LOCAL_CONFIG_FILE"];

    private static FractalContext Fractal(PhaseContext c) => c.SessionAs<FractalContext>();

    public static RehearsalScratch Scratch(PhaseContext c) =>
        RehearsalScratch.For(Fractal(c).Env.GetValueOrDefault("POSTGRES_DB") ?? "fractal", c.Run.Id, c.Target.RunsDirectory, c.Run.RemoteRunId,
            asServiceUser: !string.IsNullOrWhiteSpace(c.Target.ServiceUser));

    /// <summary>The scripts' settings for the scratch copy: its directory as the working directory, its venv's Python.</summary>
    public static FractalHostSettings ScratchHost(PhaseContext c)
    {
        var dir = Scratch(c).Directory;
        return FractalSteps.Host(c) with { WorkingDirectory = dir, Python = dir + "/venv/bin/python" };
    }

    /// <summary>fractalctl in the scratch directory finds the scratch database through the env file and, first, the process environment.</summary>
    private static Dictionary<string, string> ScratchEnvironment(PhaseContext c) => new() { ["POSTGRES_DB"] = Scratch(c).Database };

    public static RemoteScript Dump(PhaseContext c)
    {
        var run = c.Run;
        var borrowed = run.BackupPath is { } path && run.BackupSha256 is { } sha && !RehearsalScripts.IsRehearsalDump(path, run.Id);
        var script = borrowed
            ? FractalScripts.RehearsalDump(FractalSteps.Host(c), Scratch(c), null, run.BackupPath!, run.BackupSha256!)
            : FractalScripts.RehearsalDump(FractalSteps.Host(c), Scratch(c), FractalScripts.RehearsalDumpName(Fractal(c).Env.GetValueOrDefault("POSTGRES_DB") ?? "fractal", run.Id, c.Phase.Attempt), null, null);
        return FractalSteps.RecordingDump(c, script, "dump", backup =>
            PhaseOutcome.Done($"{(borrowed ? "reused " : "")}{backup.Path}, {backup.Size} bytes, SHA-256 {backup.Sha256[..12]}…") with
            {
                Facts = new { path = backup.Path, size = backup.Size, sha256 = backup.Sha256, milliseconds = backup.Milliseconds, reused = borrowed },
            });
    }

    /// <summary>
    /// The scratch database on the production server, or in a throwaway cluster when the role may not create
    /// databases; then the phase's message names the cluster's port (what the compare connects to, read back from it).
    /// </summary>
    public static RemoteScript Restore(PhaseContext c)
    {
        if (c.Run.BackupPath is not { } dump)
        {
            return RemoteScript.Refused("The rehearsal has no verified dump to restore.");
        }

        return RehearsalSteps.Restore(FractalScripts.RehearsalRestore(FractalSteps.Host(c), Scratch(c), dump), FractalScripts.PostgresEnvironment(Fractal(c).Env), Scratch(c).Database);
    }

    /// <summary>
    /// The scratch directory's env files: the migrated one (what env-write would write) and the .old copy (what
    /// env-old would keep), both pointing at the scratch database. A refused migration is the rehearsal's finding.
    /// </summary>
    public static async Task<RemoteScript> SetupAsync(PhaseContext c)
    {
        var fractal = Fractal(c);
        var current = fractal.EnvText ?? throw new InvalidOperationException($"{EnvFile} was not read.");
        var scratch = Scratch(c);
        var migration = EnvMigrator.Migrate(current, c.Run.OAuthClient);
        if (migration.Refused)
        {
            return RemoteScript.Refused($"The env file cannot be migrated: {string.Join(" ", migration.Refusals)}");
        }

        var python = (await c.Shell.RunAsync($"printf '%s' {ShellWords.QuotePath(FractalSteps.Host(c).Python)}", c.Cancellation, TimeSpan.FromSeconds(30))).Output;
        var old = PointAt(EnvMigrator.OldCopy(current, python), scratch.Database);
        var @new = PointAt(migration.NewText ?? current, scratch.Database);
        var values = DotEnvFile.Parse(current).Values();
        var files = ConfigFileKeys
            .Select(k => values.GetValueOrDefault(k)).OfType<string>().Where(f => f.Length > 0 && !f.StartsWith('/')).ToList();
        return new RemoteScript(FractalScripts.RehearsalSetup(FractalSteps.Host(c), scratch, files), new Dictionary<string, string> { ["UC_ENV_NEW"] = @new, ["UC_ENV_OLD"] = old });
    }

    /// <summary>An env file's text with <c>POSTGRES_DB</c> set to <paramref name="database"/> (every other line as it was).</summary>
    public static string PointAt(string envText, string database)
    {
        var kept = envText.Split('\n').Where(l => !PostgresDbLine().IsMatch(l));
        var text = string.Join('\n', kept).TrimEnd('\n');
        return text + "\nPOSTGRES_DB=" + database + "\n";
    }

    public static RemoteScript PipInstall(PhaseContext c) => new(FractalScripts.PipInstall(ScratchHost(c), c.Run.ToVersion));

    public static RemoteScript SetDb(PhaseContext c) => new(FractalScripts.ClusterEnvironment(Scratch(c)) + FractalScripts.SetDb(ScratchHost(c)), ScratchEnvironment(c));

    public static RemoteScript UpdateDbData(PhaseContext c) => new(FractalScripts.ClusterEnvironment(Scratch(c)) + FractalScripts.UpdateDbData(ScratchHost(c)), ScratchEnvironment(c));

    /// <summary>
    /// update-db-data's result on the copy against the plan's prediction: each user's profile and project_dir, the
    /// users left out, the resource row. A difference fails the phase: it is a finding the preflight missed.
    /// </summary>
    public static async Task<PhaseOutcome> CompareAsync(PhaseContext c)
    {
        var plan = FractalSteps.Plan(c);
        MigratedData actual;
        if (RehearsalSteps.ClusterPort(c.Run) is { } port)
        {
            // The copy is in the throwaway cluster on the target: a forward of its own to it, for this read.
            await using var forward = await c.Shell.ForwardAsync(RehearsalSteps.ClusterHost, port, c.Cancellation);
            actual = await Fractal(c).Database.WithEndpoint(forward.Host, forward.Port, Scratch(c).Database).MigratedDataAsync(c.Cancellation);
        }
        else
        {
            actual = await Fractal(c).Database.WithDatabase(Scratch(c).Database).MigratedDataAsync(c.Cancellation);
        }

        var comparison = MigrationComparison.Compare(plan.Predicted, plan.ResourceType ?? "local", actual);
        // Every user's line for a readable database; a summary only beyond that (10,000 users would be 10,000 lines).
        foreach (var match in comparison.Matches.Count <= 500 ? comparison.Matches : comparison.Matches.Take(0))
        {
            await c.WriteAsync("[compare] " + match);
        }

        foreach (var finding in comparison.Findings)
        {
            await c.WriteAsync("[compare] FINDING the preflight missed: " + finding);
        }

        var summary = $"{comparison.Matches.Count} as predicted, {comparison.Findings.Count} difference(s)";
        await c.WriteAsync("[compare] " + summary);
        var facts = new { matches = comparison.Matches.Count, findings = comparison.Findings };
        return comparison.Findings.Count == 0
            ? PhaseOutcome.Done($"update-db-data did what the plan predicted ({summary})") with { Facts = facts }
            : PhaseOutcome.Failed($"{comparison.Findings.Count} finding(s) the preflight missed: {string.Join(" ", comparison.Findings.Take(5))}") with { Facts = facts };
    }

    public static RemoteScript Cleanup(PhaseContext c) =>
        new(FractalScripts.RehearsalCleanup(FractalSteps.Host(c), Scratch(c), FractalScripts.RehearsalDumpPrefix(Fractal(c).Env.GetValueOrDefault("POSTGRES_DB") ?? "fractal", c.Run.Id)),
            FractalScripts.PostgresEnvironment(Fractal(c).Env));

    [GeneratedRegex(@"^\s*(export\s+)?POSTGRES_DB\s*=")]
    private static partial Regex PostgresDbLine();
}
