using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Fractal;

namespace UpgradeConsole.Tests.Fractal;

/// <summary>Where steps run through sudo, "check on host" also asks whether the user's slurm_user can enter the directory.</summary>
public sealed class CheckOnHostAsTheSlurmUserTests(SshServer ssh, PostgresServer postgres) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private HttpClient _admin = default!;
    private FractalTarget _fractal = default!;

    public async ValueTask InitializeAsync()
    {
        Assert.True(ProcessRunner.IsRoot, "This test needs the fixture's sudo rule; run the suite as root (./scripts/test.sh in CI).");
        _admin = await _app.CreateFirstAdminAsync();
        _fractal = await FractalTarget.CreateAsync(_app, _admin, ssh, postgres, serviceUser: SshServer.ServiceUser);
    }

    [Fact]
    public async Task CheckOnHost_ReportsWhetherTheSlurmUserCanEnter()
    {
        var open = $"/tmp/uc-open-{Guid.NewGuid():N}";
        var closed = $"/tmp/uc-closed-{Guid.NewGuid():N}";
        await ssh.RunAsync($"mkdir -m 755 {open} && mkdir -m 700 {closed}");
        await _fractal.ExecuteAsync($"UPDATE user_settings SET slurm_user = '{SshServer.ServiceUser}', project_dir = '{open}' WHERE id = 2; UPDATE user_settings SET slurm_user = '{SshServer.ServiceUser}', project_dir = '{closed}' WHERE id = 5");

        // The users page's "check on host" calls this service as the person (the browser flow is in FixingUsersBeforeTheUpgradeTests).
        var canEnter = await _app.AsAsync<FractalUsersService, string>(UpgradeConsoleApplicationFactory.AdminEmail, (s, admin) => s.CheckOnHostAsync(_fractal.TargetId, 2, admin, CancellationToken.None));
        Assert.Contains($"{SshServer.ServiceUser} can enter it", canEnter, StringComparison.Ordinal);
        var cannot = await _app.AsAsync<FractalUsersService, string>(UpgradeConsoleApplicationFactory.AdminEmail, (s, admin) => s.CheckOnHostAsync(_fractal.TargetId, 5, admin, CancellationToken.None));
        Assert.Contains($"{SshServer.ServiceUser} cannot enter it", cannot, StringComparison.Ordinal);
    }

    public async ValueTask DisposeAsync()
    {
        await _fractal.DisposeAsync();
        await _app.DisposeAsync();
    }
}
