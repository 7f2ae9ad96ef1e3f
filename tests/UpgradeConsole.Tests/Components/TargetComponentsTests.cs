using Bunit;
using Microsoft.AspNetCore.Components;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Tests.Components;

/// <summary>The target page's pieces with logic: which offered key may be pinned, what each role is offered, the busy state.</summary>
public sealed class TargetComponentsTests : MudComponentContext
{
    // Two made-up public keys (any bytes have a SHA256 fingerprint; nothing parses them here).
    private static readonly HostKey Pinned = new("ssh-ed25519", Convert.ToBase64String("pinned host key bytes"u8.ToArray()));
    private static readonly HostKey Other = new("ecdsa-sha2-nistp256", Convert.ToBase64String("another host key bytes"u8.ToArray()));

    [Fact]
    public void HostKeyChoices_ThePinnedKey_IsMarked_AndOnlyAnotherKeyCanBePinned()
    {
        var target = new Target { Id = 7, Host = "fractal.example.org", Port = 22, PinnedFingerprint = Pinned.Fingerprint, HostKeyState = HostKeyState.Pinned };
        HostKey? chosen = null;
        var cut = Render<HostKeyChoices>(p => p
            .Add(c => c.Target, target)
            .Add(c => c.Keys, [Pinned, Other])
            .Add(c => c.OnPin, EventCallback.Factory.Create<HostKey>(this, k => chosen = k)));

        var pinnedRow = cut.Find($"[data-fingerprint='{Pinned.Fingerprint}']");
        Assert.Equal("pinned", pinnedRow.QuerySelector("[data-testid=key-verdict]")!.TextContent);
        Assert.Null(pinnedRow.QuerySelector("[data-testid=pin-key]"));

        var otherRow = cut.Find($"[data-fingerprint='{Other.Fingerprint}']");
        Assert.Equal($"differs from the pinned {Pinned.Fingerprint}", otherRow.QuerySelector("[data-testid=key-verdict]")!.TextContent);
        otherRow.QuerySelector("[data-testid=pin-key]")!.Click();
        Assert.Equal(Other, chosen);
        Assert.Contains("fractal.example.org:22 offers these keys", cut.Markup, StringComparison.Ordinal);
    }

    [Fact]
    public void HostKeyChoices_ForAJumpHostWithNothingPinned_OffersEveryKey_AndShowsAScanError()
    {
        var target = new Target { Id = 7, Host = "fractal.internal", JumpHost = "ops@bastion:22", PinnedFingerprint = Pinned.Fingerprint };
        var cut = Render<HostKeyChoices>(p => p
            .Add(c => c.Target, target)
            .Add(c => c.Keys, [Pinned, Other])
            .Add(c => c.Jump, true)
            .Add(c => c.Error, "bastion refused the connection"));

        Assert.Equal(2, cut.FindAll("[data-testid=pin-key]").Count);
        Assert.Empty(cut.FindAll("[data-testid=key-verdict]"));
        Assert.Contains("The jump host ops@bastion:22 offers these keys", cut.Markup, StringComparison.Ordinal);
        Assert.Equal("bastion refused the connection", cut.Find("[data-testid=scan-error]").TextContent);
    }

    [Fact]
    public void HostKeyChoices_WhileBusy_DisablesPinning()
    {
        var cut = Render<HostKeyChoices>(p => p
            .Add(c => c.Target, new Target { Host = "h", Port = 22 })
            .Add(c => c.Keys, [Other])
            .Add(c => c.Busy, true));
        Assert.True(cut.Find("[data-testid=pin-key]").HasAttribute("disabled"));
    }

    [Theory]
    [InlineData(HostKeyState.Pinned, "Pinned")]
    [InlineData(HostKeyState.Unpinned, "Not pinned")]
    [InlineData(HostKeyState.Mismatch, "Key changed: blocked")]
    public void HostKeyBadge_SaysTheState(HostKeyState state, string text)
    {
        var cut = Render<HostKeyBadge>(p => p.Add(c => c.Target, new Target { HostKeyState = state, PinnedFingerprint = Pinned.Fingerprint }));
        Assert.Equal(text, cut.Find("[data-testid=hostkey-state]").TextContent);
    }

    [Fact]
    public void HostKeyBadge_ForATargetTrustedThroughAHostCa_SaysTrustedCa_WithTheCaFingerprint()
    {
        const string ca = "SHA256:7mJ4yQhP1kR0W2bX9cVdE3fGhI5jK6lM8nO0pQrStUv";
        var target = new Target { HostKeyState = HostKeyState.Unpinned, HostCertificateAuthority = ca, Transport = SshTransport.SshNet };
        Assert.Equal(HostKeyTrust.HostCertificateAuthority, target.HostKeyTrust);
        var cut = Render<HostKeyBadge>(p => p.Add(c => c.Target, target));
        Assert.Equal("Trusted CA", cut.Find("[data-testid=hostkey-state]").TextContent);
        Assert.Equal(ca, cut.Find("[data-testid=hostkey-ca]").TextContent);

        // Over the system OpenSSH client no CA is honoured (its known_hosts holds pinned keys only): still not pinned.
        var openSsh = new Target { HostKeyState = HostKeyState.Unpinned, HostCertificateAuthority = ca, Transport = SshTransport.OpenSsh };
        Assert.Equal("Not pinned", Render<HostKeyBadge>(p => p.Add(c => c.Target, openSsh)).Find("[data-testid=hostkey-state]").TextContent);

        // A pinned key beside the CA reads as pinned; a changed key blocks whatever CA is trusted.
        Assert.Equal("Pinned", Render<HostKeyBadge>(p => p.Add(c => c.Target, new Target { HostKeyState = HostKeyState.Pinned, HostCertificateAuthority = ca, Transport = SshTransport.SshNet, PinnedFingerprint = Pinned.Fingerprint }))
            .Find("[data-testid=hostkey-state]").TextContent);
        Assert.Equal("Key changed: blocked", Render<HostKeyBadge>(p => p.Add(c => c.Target, new Target { HostKeyState = HostKeyState.Mismatch, HostCertificateAuthority = ca, Transport = SshTransport.SshNet }))
            .Find("[data-testid=hostkey-state]").TextContent);
    }

    [Fact]
    public void ConnectionTestPanel_ForAViewer_ShowsTheLastResult_WithoutTheButton()
    {
        var record = new ConnectionTestRecord(DateTimeOffset.UnixEpoch, false, null, "No host key is pinned for this target.");
        var cut = Render<ConnectionTestPanel>(p => p.Add(c => c.Record, record).Add(c => c.CanRun, false));
        Assert.Equal("No host key is pinned for this target.", cut.Find("[data-testid=test-error]").TextContent);
        Assert.Empty(cut.FindAll("#test-connection"));
    }

    [Fact]
    public void ConnectionTestPanel_RunsOnClick_AndShowsProgressWhileBusy()
    {
        var runs = 0;
        var cut = Render<ConnectionTestPanel>(p => p.Add(c => c.CanRun, true).Add(c => c.OnRun, EventCallback.Factory.Create(this, () => runs++)));
        Assert.Contains("Not tested yet.", cut.Markup, StringComparison.Ordinal);
        cut.Find("#test-connection").Click();
        Assert.Equal(1, runs);
        Assert.Empty(cut.FindAll("[data-testid=test-running]"));

        cut.Render(p => p.Add(c => c.Busy, true));
        Assert.True(cut.Find("#test-connection").HasAttribute("disabled"));
        Assert.Single(cut.FindAll("[data-testid=test-running]"));
    }

    [Fact]
    public void DiscoveryPanel_ShowsTheMaskedVariables_AndAFailureInPlainWords()
    {
        var found = new UpgradeConsole.Core.Fractal.FractalDiscoveryResult
        {
            InstalledVersion = "2.16.6",
            EnvFilePath = "/srv/fractal/.fractal_server.env",
            Variables = [new("POSTGRES_PASSWORD", UpgradeConsole.Core.Fractal.FractalDiscovery.Mask, IsSecret: true), new("FRACTAL_RUNNER_BACKEND", "slurm", IsSecret: false)],
        };
        var cut = Render<DiscoveryPanel>(p => p.Add(c => c.Record, new DiscoveryRecord(DateTimeOffset.UnixEpoch, found, null)).Add(c => c.CanRun, true));
        Assert.Equal("2.16.6", cut.Find("[data-testid=installed-version]").TextContent.Trim());
        Assert.Contains("slurm", cut.Find("tr[data-name=FRACTAL_RUNNER_BACKEND]").TextContent, StringComparison.Ordinal);
        Assert.Contains(UpgradeConsole.Core.Fractal.FractalDiscovery.Mask, cut.Find("tr[data-name=POSTGRES_PASSWORD]").TextContent, StringComparison.Ordinal);

        cut.Render(p => p.Add(c => c.Record, new DiscoveryRecord(DateTimeOffset.UnixEpoch, null, "The target is blocked: its host key changed.")));
        Assert.Equal("The target is blocked: its host key changed.", cut.Find("[data-testid=discovery-error]").TextContent);
    }
}
