using UpgradeConsole.Web.Runbooks;

namespace UpgradeConsole.Tests.BackendAi;

/// <summary>A runbook can name preflight checks no Admin override lets through (Backend.AI's major upgrade: running sessions).</summary>
public sealed class NeverOverriddenChecksTests
{
    [Fact]
    public void RefuseOverride_ACheckTheRunbookNeverLetsThrough_IsRefusedWithItsName()
    {
        var runbook = new RunbookDefinition("bai-major", "Backend.AI major upgrade", "backend.ai", [], [])
        {
            NeverOverridden = new HashSet<string>(["backendai.no-sessions"], StringComparer.Ordinal),
        };

        Assert.Equal("The check 'backendai.no-sessions' cannot be overridden on Backend.AI major upgrade: fix what it reports and run the preflight again.",
            runbook.RefuseOverride("backendai.no-sessions"));
        Assert.Null(runbook.RefuseOverride("backendai.one-version"));
        Assert.Null(new RunbookDefinition("bai-minor", "Backend.AI minor upgrade", "backend.ai", [], []).RefuseOverride("backendai.no-sessions"));
    }
}
