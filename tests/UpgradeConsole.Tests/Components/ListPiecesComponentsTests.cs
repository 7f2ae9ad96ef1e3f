using Bunit;
using UpgradeConsole.Core.Audit;
using UpgradeConsole.Web.Api;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Components;

/// <summary>The pieces with logic on the runs list, the API tokens page and the audit page.</summary>
public sealed class ListPiecesComponentsTests : MudComponentContext
{
    private static readonly DateTimeOffset Now = new(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(RunState.Succeeded, "mud-chip-color-success")]
    [InlineData(RunState.RolledBack, "mud-chip-color-success")]
    [InlineData(RunState.Failed, "mud-chip-color-error")]
    [InlineData(RunState.NeedsAttention, "mud-chip-color-warning")]
    [InlineData(RunState.Running, "mud-chip-color-info")]
    [InlineData(RunState.WaitingForChecklist, "mud-chip-color-info")]
    [InlineData(RunState.Planned, "mud-chip-color-default")]
    public void RunStateChip_ColoursEachStateTheSameEverywhere(RunState state, string colourClass)
    {
        var cut = Render<RunStateChip>(p => p.Add(c => c.State, state));
        Assert.Equal(state.ToString(), cut.Find("[data-testid=run-state]").TextContent);
        Assert.Contains(colourClass, cut.Find(".mud-chip").ClassList);
    }

    public static TheoryData<DateTimeOffset?, DateTimeOffset?, string, string> Tokens => new()
    {
        { null, null, "active", "mud-chip-color-success" },
        { Now.AddDays(1), null, "active", "mud-chip-color-success" },
        { Now, null, "expired", "mud-chip-color-warning" },
        { Now.AddDays(-1), null, "expired", "mud-chip-color-warning" },
        // Revoked wins over expired: the audit says who revoked it.
        { Now.AddDays(-1), Now.AddDays(-2), "revoked", "mud-chip-color-error" },
        { null, Now.AddMinutes(-1), "revoked", "mud-chip-color-error" },
    };

    [Theory]
    [MemberData(nameof(Tokens))]
    public void TokenStatusChip_SaysRevokedExpiredOrActive_AtTheTimeGiven(DateTimeOffset? expires, DateTimeOffset? revoked, string status, string colourClass)
    {
        var token = new ApiToken { Id = 1, Name = "ci", Role = "Viewer", Prefix = "uc_abc", CreatedAt = Now.AddDays(-10), ExpiresAt = expires, RevokedAt = revoked };
        var cut = Render<TokenStatusChip>(p => p.Add(c => c.Token, token).Add(c => c.Now, Now));
        Assert.Equal(status, cut.Find("[data-testid=token-status]").TextContent);
        Assert.Contains(colourClass, cut.Find(".mud-chip").ClassList);
    }

    [Fact]
    public void ChainVerificationResult_WhenTheChainHolds_ShowsTheHeadHash_AndNoLink()
    {
        var cut = Render<ChainVerificationResult>(p => p.Add(c => c.Verification, new AuditVerification(42, "abc123", null, null)));
        var alert = cut.Find("[data-testid=audit-verify-result]");
        Assert.Equal("true", alert.GetAttribute("data-holds"));
        Assert.Contains("The audit chain holds: 42 event(s), head hash abc123.", alert.TextContent, StringComparison.Ordinal);
        Assert.Contains("mud-alert-text-success", cut.Find(".mud-alert").ClassList);
        Assert.Empty(cut.FindAll("[data-testid=audit-broken-link]"));
    }

    [Fact]
    public void ChainVerificationResult_WhenBroken_NamesTheEvent_AndLinksToIt()
    {
        var cut = Render<ChainVerificationResult>(p => p.Add(c => c.Verification, new AuditVerification(17, "", 17, "its hash does not match its contents")));
        var alert = cut.Find("[data-testid=audit-verify-result]");
        Assert.Equal("false", alert.GetAttribute("data-holds"));
        Assert.Equal("17", alert.GetAttribute("data-broken-at"));
        Assert.Contains("broken at event 17: its hash does not match its contents", alert.TextContent, StringComparison.Ordinal);
        Assert.Contains("mud-alert-text-error", cut.Find(".mud-alert").ClassList);
        Assert.Equal("/audit?before=18#event-17", cut.Find("[data-testid=audit-broken-link]").GetAttribute("href"));
    }
}
