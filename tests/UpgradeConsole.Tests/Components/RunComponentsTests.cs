using Bunit;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using UpgradeConsole.Core.EnvFiles;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Components;

/// <summary>The plan and run pages' pieces with logic: the env-file diff, the phase timeline's states and progress, the confirmation dialog.</summary>
public sealed class RunComponentsTests : MudComponentContext
{
    [Fact]
    public void EnvDiffView_MarksAddedRemovedAndKeptLines_ListsTheChanges_AndShowsNoSecret()
    {
        const string before = "FRACTAL_RUNNER_BACKEND=slurm\nPOSTGRES_PASSWORD=s3cret-value\nJWT_EXPIRE_SECONDS=3600\n";
        const string after = "FRACTAL_RUNNER_BACKEND=slurm_sudo\nPOSTGRES_PASSWORD=s3cret-value\nJWT_EXPIRE_SECONDS=3600\nFRACTAL_DATA_AUTH_SCHEME=viewer-paths\n";
        var migration = new EnvMigration(before, after,
            [new EnvChange("changed", "FRACTAL_RUNNER_BACKEND", null, "2.17 runs SLURM jobs through sudo.")], ["Check the SLURM user of each person."], []);

        var cut = Render<EnvDiffView>(p => p.Add(c => c.Migration, migration).Add(c => c.Diff, EnvMigrator.Diff(before, after)));

        var lines = cut.FindAll("[data-testid=diff-line]");
        Assert.Contains(lines, l => l.GetAttribute("data-op") == "remove" && l.ClassList.Contains("uc-diff-remove") && l.TextContent.Contains("FRACTAL_RUNNER_BACKEND=slurm", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.GetAttribute("data-op") == "add" && l.ClassList.Contains("uc-diff-add") && l.TextContent.Contains("FRACTAL_RUNNER_BACKEND=slurm_sudo", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.GetAttribute("data-op") == "add" && l.TextContent.Contains("FRACTAL_DATA_AUTH_SCHEME=viewer-paths", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.GetAttribute("data-op") == "same");
        Assert.Contains("2.17 runs SLURM jobs through sudo.", cut.Find("[data-testid=env-changes]").TextContent, StringComparison.Ordinal);
        Assert.Equal("Check the SLURM user of each person.", cut.Find("[data-testid=env-warning]").TextContent.Trim());
        Assert.DoesNotContain("s3cret-value", cut.Markup, StringComparison.Ordinal);
    }

    [Fact]
    public void EnvDiffView_WhenTheMigrationIsRefused_ShowsWhyAndNoDiff()
    {
        var refused = new EnvMigration("A=1\n", null, [], [], ["2.17 has a single OAuth client, and this file defines 2."]);
        var cut = Render<EnvDiffView>(p => p.Add(c => c.Migration, refused));
        Assert.Equal("2.17 has a single OAuth client, and this file defines 2.", cut.Find("[data-testid=env-refused]").TextContent);
        Assert.Empty(cut.FindAll("[data-testid=env-diff]"));
    }

    [Fact]
    public void RunLive_ShowsEachPhaseState_TheProgress_AndTheEstimateFromEarlierRuns()
    {
        var now = new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);
        var run = new Run
        {
            Id = 4,
            State = RunState.Running,
            StartedAt = now.AddMinutes(-3),
            Phases =
            [
                new() { Index = 0, Key = "preflight", Title = "Preflight", State = PhaseState.Succeeded, StartedAt = now.AddMinutes(-3), EndedAt = now.AddMinutes(-3).AddSeconds(4) },
                new() { Index = 1, Key = "backup", Title = "Back up", State = PhaseState.MarkedDone, Message = "Marked done by ada: dumped by hand" },
                new() { Index = 2, Key = "pip-install", Title = "Install", State = PhaseState.Running, Attempt = 2, StartedAt = now.AddMinutes(-1) },
                new() { Index = 3, Key = "update-db-data", Title = "Data migration (not chosen)", State = PhaseState.Skipped },
                new() { Index = 4, Key = "start", Title = "Start", State = PhaseState.Pending },
            ],
        };

        var cut = Render<RunLive>(p => p.Add(c => c.Run, run).Add(c => c.ExpectedDuration, TimeSpan.FromMinutes(10)).Add(c => c.Now, now));

        string StateOf(string key) => cut.Find($"[data-testid=run-phase][data-key='{key}']").GetAttribute("data-state")!;
        Assert.Equal("Succeeded", StateOf("preflight"));
        Assert.Equal("MarkedDone", StateOf("backup"));
        Assert.Equal("Running", StateOf("pip-install"));
        Assert.Equal("Skipped", StateOf("update-db-data"));
        Assert.Equal("Pending", StateOf("start"));
        var install = cut.Find("[data-testid=run-phase][data-key='pip-install']");
        Assert.Contains("(attempt 2)", install.TextContent, StringComparison.Ordinal);
        Assert.Contains("running for 1 min 0 s", install.TextContent, StringComparison.Ordinal);
        Assert.Contains("4.0 s", cut.Find("[data-testid=run-phase][data-key='preflight']").TextContent, StringComparison.Ordinal);
        Assert.Equal("Marked done by ada: dumped by hand", cut.Find("[data-testid=run-phase][data-key='backup'] [data-testid=phase-message]").TextContent);
        Assert.Equal("Running", cut.Find("[data-testid=run-state]").TextContent);
        Assert.Equal("2 of 5 phases done · started 2026-11-29 11:57:00 UTC · 3 min 0 s elapsed · about 7 min 0 s left (earlier runs took 10 min 0 s)",
            cut.Find("[data-testid=run-progress]").TextContent);
    }

    [Fact]
    public void RunLive_ARollback_ShowsItsStepsAfterTheRunbooksPhases_AndNoEstimateOnceStopped()
    {
        var run = new Run
        {
            State = RunState.RollbackFailed,
            StartedAt = DateTimeOffset.UnixEpoch,
            EndedAt = DateTimeOffset.UnixEpoch.AddMinutes(2),
            Phases =
            [
                new() { Index = 0, Key = "set-db", Title = "Migrate the schema", State = PhaseState.Succeeded },
                new() { Index = 1, Key = "rb-restore-db", Title = "Restore the database", IsRollback = true, State = PhaseState.Failed, Message = "pg_restore failed" },
            ],
        };

        var cut = Render<RunLive>(p => p.Add(c => c.Run, run).Add(c => c.ExpectedDuration, TimeSpan.FromMinutes(10)).Add(c => c.Now, DateTimeOffset.UnixEpoch.AddHours(1)));

        var rollback = cut.Find("[data-testid=run-phase][data-key='rb-restore-db']");
        Assert.Equal("true", rollback.GetAttribute("data-rollback"));
        Assert.Equal("Failed", rollback.GetAttribute("data-state"));
        Assert.Contains("Rollback: Restore the database", rollback.TextContent, StringComparison.Ordinal);
        // Progress counts the runbook's phases only; a stopped run shows how long it ran, and no estimate.
        Assert.Equal("1 of 1 phases done · started 1970-01-01 00:00:00 UTC · 2 min 0 s elapsed · ended 00:02:00 UTC", cut.Find("[data-testid=run-progress]").TextContent);
        Assert.Equal("RollbackFailed", cut.Find("[data-testid=run-live]").GetAttribute("data-state"));
    }

    [Fact]
    public async Task RunActionDialog_NeedsAReason_BeforeItConfirms_AndReturnsIt()
    {
        var providers = Render<MudDialogProvider>();
        var dialogs = Services.GetRequiredService<IDialogService>();
        IDialogReference? shown = null;
        await providers.InvokeAsync(async () => shown = await dialogs.ShowAsync<RunActionDialog>("Roll back?",
            new DialogParameters<RunActionDialog> { { d => d.Request, new RunActionRequest("Roll back", "Roll back what this run changed?", NeedsReason: true, Danger: true) } }));

        Assert.Equal("Roll back what this run changed?", providers.Find("[data-testid=dialog-message]").TextContent);
        Assert.True(providers.Find("#dialog-confirm").HasAttribute("disabled"));
        providers.Find("#action-reason").Input("   ");
        Assert.True(providers.Find("#dialog-confirm").HasAttribute("disabled"));
        providers.Find("#action-reason").Input("  viewer broken with 2.17 ");
        Assert.False(providers.Find("#dialog-confirm").HasAttribute("disabled"));
        providers.Find("#dialog-confirm").Click();

        var result = await shown!.Result;
        Assert.False(result!.Canceled);
        Assert.Equal(new RunActionDecision("viewer broken with 2.17", false), result.Data);
    }

    [Fact]
    public async Task RunActionDialog_ForAPhaseNotSafeToRunTwice_WaitsForTheTick_AndCancelSendsNothing()
    {
        var providers = Render<MudDialogProvider>();
        var dialogs = Services.GetRequiredService<IDialogService>();
        var request = new RunActionRequest("Retry", "Run Data migration again?", Confirmation: "I checked the target; run it again.");
        IDialogReference? shown = null;
        await providers.InvokeAsync(async () => shown = await dialogs.ShowAsync<RunActionDialog>("Retry?", new DialogParameters<RunActionDialog> { { d => d.Request, request } }));

        Assert.Empty(providers.FindAll("#action-reason"));
        Assert.True(providers.Find("#dialog-confirm").HasAttribute("disabled"));
        providers.Find("#action-confirm").Change(true);
        Assert.False(providers.Find("#dialog-confirm").HasAttribute("disabled"));
        providers.Find("#dialog-confirm").Click();
        Assert.Equal(new RunActionDecision(null, true), (await shown!.Result)!.Data);

        await providers.InvokeAsync(async () => shown = await dialogs.ShowAsync<RunActionDialog>("Retry?", new DialogParameters<RunActionDialog> { { d => d.Request, request } }));
        providers.Find("#dialog-cancel").Click();
        Assert.True((await shown!.Result)!.Canceled);
    }

    [Fact]
    public void ScheduleSection_ShowsTheWindowsAndTheSchedule_AndRaisesWhatThePersonChose()
    {
        Services.AddSingleton(TimeProvider.System);
        Assert.True(UpgradeConsole.Core.Scheduling.MaintenanceWindows.TryParse("Sat 22:00-23:30", "Europe/Zurich", out var windows, out var error), error);
        var at = new DateTimeOffset(2026, 12, 5, 21, 15, 0, TimeSpan.Zero);
        var run = new Run { Id = 7, TargetId = 3, State = RunState.Planned, ScheduledAt = at, ScheduledBy = "ada@example.org" };
        var changes = new List<ScheduleChange>();

        var cut = Render<ScheduleSection>(p => p.Add(c => c.Run, run).Add(c => c.Windows, windows).Add(c => c.CanOperate, true)
            .Add(c => c.OnChange, (ScheduleChange change) => changes.Add(change)));

        Assert.Equal("true", cut.Find("[data-testid=run-schedule]").GetAttribute("data-scheduled"));
        Assert.Contains("Sat 22:00-23:30 (Europe/Zurich)", cut.Find("[data-testid=maintenance-windows]").TextContent, StringComparison.Ordinal);
        Assert.Contains(windows.Local(at), cut.Find("[data-testid=schedule-at]").TextContent, StringComparison.Ordinal);
        Assert.Contains("ada@example.org", cut.Find("[data-testid=schedule-at]").TextContent, StringComparison.Ordinal);
        // The field starts at the schedule, as a wall-clock time of the target's zone (22:15 in Zurich).
        Assert.Equal("2026-12-05T22:15", cut.Find("#schedule-at-input").GetAttribute("value"));
        Assert.Equal("Reschedule", cut.Find("#action-schedule").TextContent.Trim());

        cut.Find("#schedule-at-input").Input("2026-12-12T22:30");
        cut.Find("#action-schedule").Click();
        cut.Find("#unschedule-reason").Input("moved to next week");
        cut.Find("#action-unschedule").Click();

        List<ScheduleChange> expected = [new("2026-12-12T22:30"), new(null, "moved to next week")];
        Assert.Equal(expected, changes);
    }

    [Fact]
    public void ScheduleSection_ForAViewer_ShowsTheScheduleWithoutControls_AndNothingOnceTheRunStarted()
    {
        Services.AddSingleton(TimeProvider.System);
        var windows = UpgradeConsole.Core.Scheduling.MaintenanceWindows.Of(null, null);
        var planned = new Run { Id = 7, State = RunState.Planned };

        var cut = Render<ScheduleSection>(p => p.Add(c => c.Run, planned).Add(c => c.Windows, windows).Add(c => c.CanOperate, false));
        Assert.NotNull(cut.Find("[data-testid=schedule-none]"));
        Assert.Empty(cut.FindAll("#action-schedule"));
        Assert.Empty(cut.FindAll("[data-testid=maintenance-windows]"));

        var running = Render<ScheduleSection>(p => p.Add(c => c.Run, new Run { Id = 8, State = RunState.Running }).Add(c => c.Windows, windows).Add(c => c.CanOperate, true));
        Assert.Empty(running.FindAll("[data-testid=run-schedule]"));
    }
}
