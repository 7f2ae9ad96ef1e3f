using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Runbooks;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Fractal;

/// <summary>
/// What the plan page shows for each phase of the Fractal runbooks: the exact commands (no secret in
/// them, the values a person typed quoted), and what each phase declares about itself. A phase added
/// without an expectation here fails <see cref="EveryPhase_HasAPreviewExpectation"/>.
/// </summary>
public sealed class FractalPhasePreviewTests
{
    private static readonly Target Target = new()
    {
        Name = "fractal-prod",
        WorkingDirectory = "/srv/fractal server",
        ServerUrl = "http://127.0.0.1:8000",
        StopCommand = "systemctl --user stop fractal",
        StartCommand = "systemctl --user start fractal",
        StatusCommand = "systemctl --user is-active fractal",
        BackupDirectory = "/backup/fractal",
        PipOptions = "--index-url https://pypi.example/simple",
    };

    private const string Python = "/srv/fractal server/venv/bin/python";

    private static readonly string[] SomeCheckIds = ["runs.active", "backup.space", "backup.pg_dump", "service.status", "users.superuser", "env.backend", "target.reachable"];

    private static string? Preview(RunbookDefinition runbook, string key, string to = "2.17.0") =>
        runbook.Phase(key)!.Preview(new PlanInputs(Target, "2.16.4", to, new FractalPlanFacts(FractalRuntime.HostSettings(Target, Python))));

    /// <summary>Each phase key and a check on its preview, shared by both runbooks where the key is.</summary>
    private static readonly Dictionary<string, Action<string?, string>> Expectations = new()
    {
        ["preflight"] = (p, _) => Assert.Equal("every preflight check, run again", p),
        ["env-old"] = (p, _) => Assert.Equal(
            "cp .fractal_server.env .fractal_server.env.old (adding FRACTAL_SLURM_WORKER_PYTHON=/srv/fractal server/venv/bin/python if missing), written atomically", p),
        ["backup"] = (p, _) =>
        {
            Assert.StartsWith("set -euo pipefail\ncd -- '/srv/fractal server'\nPY='/srv/fractal server/venv/bin/python'\n", p);
            Assert.Contains("dir='/backup/fractal'", p);
            Assert.Contains("file=\"$dir\"/'fractal-<database>-run<id>.dump'", p);
            Assert.Contains("pg_dump -Fc --no-password -f \"$file.partial\"", p);
            Assert.Contains("pg_restore --list \"$file\"", p);
            Assert.Contains("sha256sum", p);
        },
        ["stop"] = (p, _) =>
        {
            Assert.Contains("\nsystemctl --user stop fractal\n", p);
            Assert.Contains("if ( systemctl --user is-active fractal ) > /dev/null 2>&1; then sleep 1;", p);
        },
        ["env-write"] = (p, _) => Assert.Equal(
            "the migrated .fractal_server.env, written atomically (temp file + rename); the 2.16 file kept as .fractal_server.env.pre-2.17.0-run<id>", p),
        ["verify-files"] = (p, _) =>
        {
            foreach (var file in new[] { ".fractal_server.env.old", ".fractal_server.env", "<SLURM JSON>", "<pixi JSON if set>" })
            {
                Assert.Contains($"if [ -f '{file}' ]; then", p);
            }

            Assert.EndsWith("exit $missing\n", p);
        },
        ["pip-install"] = (p, to) =>
        {
            Assert.Contains($"\"$PY\" -m pip install --disable-pip-version-check '--index-url' 'https://pypi.example/simple' 'fractal-server=={to}'", p);
            Assert.Contains($"[ \"$installed\" = '{to}' ]", p);
        },
        ["set-db"] = (p, _) => Assert.EndsWith("\"$FRACTALCTL\" set-db", p),
        ["update-db-data"] = (p, _) => Assert.EndsWith("printf 'yes\\nyes\\nyes\\nyes\\nyes\\n' | \"$FRACTALCTL\" update-db-data", p),
        ["start"] = (p, to) =>
        {
            Assert.Contains("\nsystemctl --user start fractal\n", p);
            Assert.Contains("url='http://127.0.0.1:8000/api/alive/'", p);
            Assert.Contains($"expected='{to}'", p);
            Assert.Contains("for i in $(seq 1 60); do", p);
        },
        ["post-checks"] = (p, _) => Assert.Equal(
            "SELECT version_num FROM alembic_version; SELECT count(*) FROM resource; users expected to be migrated have a profile and their project_dir", p),
        ["checklist"] = (p, _) => Assert.Null(p),
    };

    public static TheoryData<string, string> EveryPhase()
    {
        var data = new TheoryData<string, string>();
        foreach (var runbook in FractalRunbooks.All)
        {
            foreach (var phase in runbook.Phases)
            {
                data.Add(runbook.Id, phase.Key);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(EveryPhase))]
    public void EveryPhase_HasAPreviewExpectation(string runbookId, string key) =>
        Assert.True(Expectations.ContainsKey(key), $"{runbookId}: phase {key} has no preview expectation in this test.");

    [Theory]
    [MemberData(nameof(EveryPhase))]
    public void Preview_OfEachPhase_ShowsItsExactCommands(string runbookId, string key)
    {
        var runbook = FractalRunbooks.All.Single(r => r.Id == runbookId);
        var to = runbook.FixedToVersion ?? "2.17.1";

        Expectations[key](Preview(runbook, key, to), to);
    }

    [Fact]
    public void Preview_NeverHoldsTheDatabasePassword()
    {
        // Secrets travel as environment variables (PGPASSWORD), so no preview can hold one.
        foreach (var runbook in FractalRunbooks.All)
        {
            foreach (var phase in runbook.Phases)
            {
                Assert.DoesNotContain("PGPASSWORD", Preview(runbook, phase.Key) ?? "", StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void Upgrade2170_Phases_DeclareTheirTimeoutIdempotencyPointOfNoReturnAndRollback()
    {
        var runbook = FractalRunbooks.Upgrade2170;

        Assert.Equal(
            ["preflight", "env-old", "backup", "stop", "env-write", "verify-files", "pip-install", "set-db", "update-db-data", "start", "post-checks", "checklist"],
            runbook.Phases.Select(p => p.Key));
        Assert.Equal("set-db", runbook.Phases[runbook.PointOfNoReturnIndex].Key);
        Assert.Equal(["update-db-data"], runbook.Phases.Where(p => !p.Idempotent).Select(p => p.Key));
        Assert.Equal(["preflight"], runbook.Phases.Where(p => p.Gate).Select(p => p.Key));
        Assert.Equal(PhaseKind.Manual, runbook.Phase("checklist")!.Kind);
        Assert.Equal(PhaseKind.Builtin, runbook.Phase("env-write")!.Kind);
        Assert.Equal(PhaseKind.Remote, runbook.Phase("update-db-data")!.Kind);
        Assert.Equal(TimeSpan.FromHours(6), runbook.Phase("backup")!.Timeout);
        Assert.Equal(TimeSpan.FromHours(2), runbook.Phase("set-db")!.Timeout);
        Assert.Equal(TimeSpan.FromHours(4), runbook.Phase("update-db-data")!.Timeout);
        Assert.Equal(TimeSpan.FromMinutes(30), runbook.Phase("pip-install")!.Timeout);
        Assert.Equal(TimeSpan.FromMinutes(1), runbook.Phase("verify-files")!.Timeout);
        Assert.Equal(["rb-restore-db", "rb-verify"], runbook.Phase("set-db")!.Rollback.Select(a => a.Key));
        Assert.Equal(["rb-env"], runbook.Phase("env-write")!.Rollback.Select(a => a.Key));
        Assert.Equal("2.17.0", runbook.FixedToVersion);
        Assert.True(runbook.AsksForOAuthClient);
        Assert.True(runbook.HasDataMigration);
    }

    [Fact]
    public void RequiredChecks_The2170UpgradeNeedsEveryCheck_AReleaseOnlyBackupServiceAndNoOtherRun()
    {
        Assert.True(FractalRunbooks.Upgrade2170.Requires("users.superuser"));
        Assert.True(FractalRunbooks.Upgrade2170.Requires(CommonChecks.TargetReachable));

        var release = FractalRunbooks.Release;
        Assert.Equal(
            new[] { CommonChecks.ActiveRun, FractalCheckIds.BackupSpace, FractalCheckIds.PgDump, FractalCheckIds.ServiceStatus }.Order(),
            SomeCheckIds.Where(release.Requires).Order());
        Assert.Equal(CheckRequirement.Of(FractalCheckIds.BackupSpace, FractalCheckIds.PgDump).Ids, release.Phase("backup")!.RequiredChecks.Ids);
        Assert.True(release.Phase("update-db-data")!.Optional);
        Assert.Null(release.FixedToVersion);
    }
}
