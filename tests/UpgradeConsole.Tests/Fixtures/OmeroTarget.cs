using System.Globalization;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// An OMERO.server 5.3.5 target for a test: the OMERO host double (<see cref="OmeroHost"/>) with the
/// 5.6.3 release zip put beside <c>OMERO.server</c> (where the guide unpacks releases), added to the
/// dashboard as an <c>omero</c> target through the targets page's service and pinned.
/// </summary>
public sealed class OmeroTarget : IAsyncDisposable
{
    private OmeroTarget(RemoteSession remote, OmeroHost host, int targetId, string name)
    {
        Remote = remote;
        Host = host;
        TargetId = targetId;
        Name = name;
    }

    public RemoteSession Remote { get; }

    public OmeroHost Host { get; }

    public int TargetId { get; }

    public string Name { get; }

    public static async Task<OmeroTarget> CreateAsync(UpgradeConsoleApplicationFactory app, SshServer ssh, PostgresServer postgres)
    {
        var remote = new RemoteSession(ssh);
        var host = await OmeroHost.CreateAsync(remote.Shell, postgres);
        var (exit, output) = await host.RunAsync($"cp -p releases/OMERO.server-{OmeroHost.NewVersion}-ice36.zip server/");
        Assert.True(exit == 0, output);
        var name = "omero-" + Guid.NewGuid().ToString("N")[..8];
        var id = await app.AddTargetAsync(new()
        {
            ["Name"] = name,
            ["Product"] = "omero",
            ["Host"] = ssh.Host,
            ["Port"] = ssh.Port.ToString(CultureInfo.InvariantCulture),
            ["SshUser"] = ssh.User,
            ["PrivateKey"] = ssh.ClientKey,
            ["WorkingDirectory"] = host.ServerDirectory,
            ["PythonPath"] = host.Venv + "/bin/python",
            ["BackupDirectory"] = host.AbsoluteDirectory + "/backups",
            // No PyPI here: pip installs the double's wheels from the host's own directory.
            ["PipOptions"] = $"--no-index --find-links {host.AbsoluteDirectory}/wheels",
        });
        await app.PinHostKeyAsync(id, await ssh.HostKeyFingerprintAsync());
        return new OmeroTarget(remote, host, id, name);
    }

    public async ValueTask DisposeAsync()
    {
        await Host.DisposeAsync();
        await Remote.DisposeAsync();
    }
}
