using Bunit;
using Microsoft.AspNetCore.Components;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Fractal;

namespace UpgradeConsole.Tests.Components;

/// <summary>
/// The Fractal users grid's pieces with logic: the outcome chips, the counts that filter, the pattern
/// dialog that previews before it applies (only the valid changes), and the fields' validation.
/// </summary>
public sealed class FractalUsersComponentsTests : MudComponentContext
{
    private static FractalUser User(int id, string email, string? projectDir = null) =>
        new() { Id = id, Email = email, IsActive = true, IsVerified = true, SettingsId = id, ProjectDir = projectDir, SlurmUser = email.Split('@')[0] };

    [Theory]
    [InlineData(MigrationOutcome.Migrated, "Migrated", "mud-chip-color-success")]
    [InlineData(MigrationOutcome.LeftOut, "Left out: will lose access", "mud-chip-color-warning")]
    [InlineData(MigrationOutcome.Blocks, "Blocks the upgrade", "mud-chip-color-error")]
    public void OutcomeChip_SaysTheOutcome_InItsColour_WithEveryReason(MigrationOutcome outcome, string label, string colourClass)
    {
        var verdict = new UserVerdict(User(3, "bob@example.org"), outcome, ["project_dir is not set", "has no slurm_user"], null);
        var cut = Render<OutcomeChip>(p => p.Add(c => c.Verdict, verdict));

        var chip = cut.Find("[data-testid=outcome]");
        Assert.Equal(label, chip.TextContent);
        Assert.Equal(outcome.ToString(), chip.GetAttribute("data-outcome"));
        Assert.Contains(colourClass, cut.Find(".mud-chip").ClassList);
        Assert.Equal("project_dir is not set; has no slurm_user", cut.Find("[data-testid=reasons]").TextContent);
    }

    [Fact]
    public void OutcomeChip_ForTheClassifiedFixture_FollowsTheMigrationRules()
    {
        // The rules decide; the chip only shows: a user without project_dir blocks, one not verified is left out.
        var verdicts = MigrationRules.Classify(
            [User(1, "alice@example.org", "/shared/alice"), User(2, "bob@example.org"), User(3, "carol@example.org", "/shared/carol") with { IsVerified = false }], "slurm");
        var chips = verdicts.Select(v => Render<OutcomeChip>(p => p.Add(c => c.Verdict, v)).Find("[data-testid=outcome]").GetAttribute("data-outcome")).ToList();
        Assert.Equal(["Migrated", "Blocks", "LeftOut"], chips);
    }

    [Fact]
    public void UsersSummary_ShowsTheCounts_MarksTheFilter_AndRaisesTheChosenOne()
    {
        string? chosen = null;
        var cut = Render<UsersSummary>(p => p
            .Add(c => c.Counts, new UsersCounts(All: 10, Blocks: 4, LeftOut: 2, Migrated: 4))
            .Add(c => c.Backend, "slurm")
            .Add(c => c.Filter, "blocking")
            .Add(c => c.OnFilter, EventCallback.Factory.Create<string>(this, f => chosen = f)));

        Assert.Contains("4", cut.Find("[data-testid=count-blocking]").TextContent, StringComparison.Ordinal);
        Assert.Contains("2", cut.Find("[data-testid=count-left-out]").TextContent, StringComparison.Ordinal);
        Assert.Contains("10", cut.Find("[data-testid=count-all]").TextContent, StringComparison.Ordinal);
        Assert.Equal("true", cut.Find("[data-testid=count-blocking]").GetAttribute("data-selected"));
        Assert.Equal("false", cut.Find("[data-testid=count-migrated]").GetAttribute("data-selected"));
        Assert.Contains("slurm_sudo", cut.Markup, StringComparison.Ordinal);

        cut.Find("[data-testid=count-migrated]").Click();
        Assert.Equal("migrated", chosen);
    }

    [Fact]
    public async Task PatternDialog_PreviewsFirst_ThenConfirmsOnlyTheValidChanges()
    {
        var provider = Render<MudDialogProvider>();
        (string Pattern, bool OnlyMissing)? asked = null;
        Func<string, bool, Task<IReadOnlyList<ProjectDirProposal>>> preview = (pattern, onlyMissing) =>
        {
            asked = (pattern, onlyMissing);
            return Task.FromResult<IReadOnlyList<ProjectDirProposal>>(
            [
                new(User(3, "bob@example.org"), "/shared/projects/bob", null),
                new(User(9, "ivan@example.org", "projects/ivan"), "/shared/projects/ivan", null),
                new(User(6, "erin@example.org") with { SettingsId = null }, "/shared/projects/erin", "has no settings row (create it first)"),
            ]);
        };
        var dialogs = Services.GetRequiredService<IDialogService>();
        var reference = await provider.InvokeAsync(() => dialogs.ShowAsync<PatternDialog>("Pattern", new DialogParameters<PatternDialog> { { d => d.Preview, preview } }));

        // Nothing to apply before a preview.
        Assert.True(provider.Find("#apply-pattern").HasAttribute("disabled"));
        provider.Find("#pattern").Input("/shared/projects/{email_local}");
        provider.Find("form").Submit();

        Assert.Equal(("/shared/projects/{email_local}", true), asked);
        Assert.Equal(3, provider.FindAll("[data-testid=proposal]").Count);
        Assert.Contains("skipped: has no settings row", provider.Find("[data-testid=proposal][data-email='erin@example.org']").TextContent, StringComparison.Ordinal);
        var apply = provider.Find("#apply-pattern");
        Assert.False(apply.HasAttribute("disabled"));
        Assert.Contains("Apply 2 change(s)", apply.TextContent, StringComparison.Ordinal);

        apply.Click();
        var result = await reference.Result;
        Assert.False(result!.Canceled);
        var confirmed = Assert.IsAssignableFrom<IReadOnlyList<ProjectDirProposal>>(result.Data);
        Assert.Equal(["bob@example.org", "ivan@example.org"], confirmed.Select(p => p.User.Email));
    }

    [Fact]
    public async Task PatternDialog_WhenEveryValueIsSkipped_CannotApply_AndCancelChangesNothing()
    {
        var provider = Render<MudDialogProvider>();
        Func<string, bool, Task<IReadOnlyList<ProjectDirProposal>>> preview = (_, _) =>
            Task.FromResult<IReadOnlyList<ProjectDirProposal>>([new(User(3, "bob@example.org") with { SlurmUser = null }, null, "a placeholder has no value for this user")]);
        var reference = await provider.InvokeAsync(() => Services.GetRequiredService<IDialogService>()
            .ShowAsync<PatternDialog>("Pattern", new DialogParameters<PatternDialog> { { d => d.Preview, preview }, { d => d.OnlyMissing, false } }));

        provider.Find("#pattern").Input("/shared/{slurm_user}");
        provider.Find("form").Submit();
        Assert.Equal("false", provider.Find("[data-testid=proposal]").GetAttribute("data-ok"));
        Assert.True(provider.Find("#apply-pattern").HasAttribute("disabled"));

        provider.Find("#cancel-pattern").Click();
        Assert.True((await reference.Result)!.Canceled);
    }

    [Fact]
    public async Task PatternDialog_ARefusalByRole_IsShown_NotThrown()
    {
        var provider = Render<MudDialogProvider>();
        Func<string, bool, Task<IReadOnlyList<ProjectDirProposal>>> preview = (_, _) =>
            throw new AccessDeniedException("Your role (Viewer) does not allow this; it needs Operator.");
        await provider.InvokeAsync(() => Services.GetRequiredService<IDialogService>()
            .ShowAsync<PatternDialog>("Pattern", new DialogParameters<PatternDialog> { { d => d.Preview, preview } }));

        provider.Find("#pattern").Input("/shared/{slurm_user}");
        provider.Find("form").Submit();
        Assert.Equal("Your role (Viewer) does not allow this; it needs Operator.", provider.Find("[data-testid=pattern-error]").TextContent);
        Assert.Empty(provider.FindAll("[data-testid=proposal]"));
        Assert.True(provider.Find("#apply-pattern").HasAttribute("disabled"));
    }

    [Theory]
    [InlineData("/shared/projects/bob", null)]
    [InlineData("relative/dir", "not an absolute path")]
    [InlineData("/tmp/$(id)", "forbidden characters")]
    [InlineData("   ", "is not set")]
    public void ProjectDirField_ValidatesAsFractalDoes(string value, string? problem)
    {
        var message = UsersPage.ProjectDirProblem(value);
        if (problem is null)
        {
            Assert.Null(message);
        }
        else
        {
            Assert.Contains(problem, message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("frank", true)]
    [InlineData("-rf", false)]
    [InlineData("a b", false)]
    [InlineData("x;id", false)]
    public void SlurmUserField_AcceptsOnlyAUserName(string value, bool valid) =>
        Assert.Equal(valid, UsersPage.SlurmUserProblem(value) is null);

    [Fact]
    public void UsersToolbar_IsDrawnAgainOnlyWhenWhatItShowsChanged()
    {
        string? searched = null;
        bool? bulk = null;
        ComponentParameterCollectionBuilder<UsersToolbar> Parameters(ComponentParameterCollectionBuilder<UsersToolbar> p, int selected, bool busy = false) => p
            .Add(c => c.Search, "bob")
            .Add(c => c.CanEdit, true)
            .Add(c => c.Busy, busy)
            .Add(c => c.Selected, selected)
            .Add(c => c.OnSearch, EventCallback.Factory.Create<string?>(this, v => searched = v))
            .Add(c => c.OnBulk, EventCallback.Factory.Create<bool>(this, v => bulk = v));
        var cut = Render<UsersToolbar>(p => Parameters(p, 0));
        Assert.True(cut.Find("#bulk-activate").HasAttribute("disabled"));

        // The grid draws its toolbar with every page of rows: the same values draw nothing.
        cut.Render(p => Parameters(p, 0));
        cut.Render(p => Parameters(p, 0));
        Assert.Equal(1, cut.RenderCount);

        // A new selection count draws it (and its children) again; the same count after that does not.
        cut.Render(p => Parameters(p, 2));
        var drawn = cut.RenderCount;
        Assert.True(drawn > 1);
        cut.Render(p => Parameters(p, 2));
        Assert.Equal(drawn, cut.RenderCount);
        Assert.Equal("2 selected", cut.Find("[data-testid=selected-count]").TextContent);
        cut.Find("#bulk-deactivate").Click();
        Assert.False(bulk);

        cut.Render(p => Parameters(p, 2, busy: true));
        Assert.True(cut.Find("#bulk-activate").HasAttribute("disabled"));
        cut.Find("#user-search").Input("carol");
        cut.WaitForAssertion(() => Assert.Equal("carol", searched));
    }
}
