using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace UpgradeConsole.Web.Targets;

public enum TargetAuthMethod
{
    /// <summary>A private key pasted or uploaded by an Admin, encrypted at rest, served to ssh by a private agent.</summary>
    StoredKey,

    /// <summary>A private key file on the dashboard host.</summary>
    KeyFile,

    /// <summary>The dashboard user's own ssh-agent (SSH_AUTH_SOCK) and ssh configuration.</summary>
    Agent,
}

/// <summary>Which SSH client carries a target's connections.</summary>
public enum SshTransport
{
    /// <summary>The system OpenSSH client: the dashboard user's ssh_config, ssh-agent, FIDO keys, certificates, Kerberos.</summary>
    OpenSsh,

    /// <summary>SSH.NET inside the dashboard: keys in memory, one connection per target, nothing outlives the process.</summary>
    SshNet,
}

public enum HostKeyState
{
    /// <summary>No key pinned yet: the dashboard refuses to connect.</summary>
    Unpinned,

    Pinned,

    /// <summary>The server presented another key: every action is blocked until an Admin re-pins.</summary>
    Mismatch,
}

/// <summary>
/// What the dashboard trusts when it connects to a target: what the host-key badge and the API's
/// <c>hostKey.trust</c> say. Derived from <see cref="HostKeyState"/> and the host CA, never stored.
/// </summary>
public enum HostKeyTrust
{
    /// <summary>Nothing pinned and no host CA: nothing connects.</summary>
    None,

    /// <summary>The host's own key is pinned (a host CA, if any, is trusted beside it).</summary>
    PinnedKey,

    /// <summary>No host key pinned, but host certificates signed by the pinned host CA are accepted (SSH.NET).</summary>
    HostCertificateAuthority,

    /// <summary>The host presented another key than the pinned one: every action is blocked.</summary>
    Blocked,
}

/// <summary>A server the dashboard upgrades, reached over SSH.</summary>
public sealed class Target
{
    public const string DefaultStopCommand = "sudo -n systemctl stop fractal-server";
    public const string DefaultStartCommand = "sudo -n systemctl start fractal-server";
    public const string DefaultStatusCommand = "sudo -n systemctl is-active fractal-server";

    public int Id { get; set; }

    public string Name { get; set; } = "";

    /// <summary>What runs there; decides discovery and runbooks (<c>fractal-server</c> for now).</summary>
    public string Product { get; set; } = Fractal.FractalProduct.ProductId;

    public string Host { get; set; } = "";

    public int Port { get; set; } = 22;

    public string SshUser { get; set; } = "";

    public TargetAuthMethod AuthMethod { get; set; }

    /// <summary>The stored private key, encrypted with ASP.NET Core Data Protection. Never shown again.</summary>
    public string? ProtectedPrivateKey { get; set; }

    /// <summary>The stored key's public fingerprint, to tell keys apart without revealing them.</summary>
    public string? PrivateKeyFingerprint { get; set; }

    public string? KeyFilePath { get; set; }

    /// <summary>The passphrase of the stored key or key file, encrypted like the key; null when it has none.</summary>
    public string? ProtectedKeyPassphrase { get; set; }

    /// <summary>
    /// The SSH client for this target. New targets get SSH.NET; rows from before the column existed
    /// keep OpenSSH (the migration's default), since they were set up and tested with it.
    /// </summary>
    public SshTransport Transport { get; set; } = SshTransport.SshNet;

    /// <summary><c>user@host:port</c> of a jump host, or null.</summary>
    public string? JumpHost { get; set; }

    /// <summary>Where fractal-server runs and <see cref="EnvFileName"/> lives.</summary>
    public string WorkingDirectory { get; set; } = "";

    public string EnvFileName { get; set; } = ".fractal_server.env";

    /// <summary>The Python of fractal-server's environment, when it cannot be found from the env file.</summary>
    public string? PythonPath { get; set; }

    /// <summary>fractal-server's address as seen from the target itself.</summary>
    public string ServerUrl { get; set; } = "http://127.0.0.1:8000";

    /// <summary>Run steps as this user with <c>sudo -n -u</c>; as the SSH user when null.</summary>
    public string? ServiceUser { get; set; }

    public string StopCommand { get; set; } = DefaultStopCommand;

    public string StartCommand { get; set; } = DefaultStartCommand;

    public string StatusCommand { get; set; } = DefaultStatusCommand;

    /// <summary>Where step directories go on the target.</summary>
    public string RunsDirectory { get; set; } = Core.Remote.StepLocation.DefaultRunsDirectory;

    /// <summary>Extra pip options for installs (e.g. a local index), one word each, quoted when used.</summary>
    public string? PipOptions { get; set; }

    /// <summary>Starting a run on this target needs a second person's approval.</summary>
    public bool RequireApproval { get; set; }

    /// <summary>A run of this target needs a passing rehearsal newer than this (a preflight check, issue 18); null: not asked.</summary>
    public TimeSpan? RequirePassingRehearsalWithin { get; set; }

    /// <summary>
    /// Weekly windows in which a run may start and cross its point of no return, one per line
    /// (<c>Sat 22:00-04:00</c>, <c>Mon-Fri 01:00-03:00</c>); null: any time. See <see cref="Core.Scheduling.MaintenanceWindows"/>.
    /// </summary>
    public string? MaintenanceWindows { get; set; }

    /// <summary>The target's IANA time zone (windows and schedules are shown in it); null: UTC.</summary>
    public string? TimeZone { get; set; }

    /// <summary>
    /// The SHA256 fingerprint of a host certificate authority's key the target's host certificate must be
    /// signed by (OpenSSH's @cert-authority), pinned by an Admin instead of, or beside, the host's own key.
    /// </summary>
    public string? HostCertificateAuthority { get; set; }

    /// <summary>An OpenSSH user certificate (the <c>-cert.pub</c> line) for the stored key or key file; public, not secret.</summary>
    public string? UserCertificate { get; set; }

    /// <summary>Where backups (pg_dump) go on the target.</summary>
    public string BackupDirectory { get; set; } = "~/upgradeconsole-backups";

    public HostKeyState HostKeyState { get; set; }

    /// <summary>A host certificate of the pinned CA is accepted in place of a pinned key (SSH.NET only: the OpenSSH transport reads a known_hosts of pinned keys).</summary>
    public bool TrustsHostCertificateAuthority => HostCertificateAuthority is not null && Transport == SshTransport.SshNet;

    /// <summary>What a connection to this target trusts; see <see cref="Targets.HostKeyTrust"/>.</summary>
    public HostKeyTrust HostKeyTrust => HostKeyState switch
    {
        HostKeyState.Mismatch => HostKeyTrust.Blocked,
        HostKeyState.Pinned => HostKeyTrust.PinnedKey,
        _ when TrustsHostCertificateAuthority => HostKeyTrust.HostCertificateAuthority,
        _ => HostKeyTrust.None,
    };

    public string? PinnedKeyType { get; set; }

    public string? PinnedKey { get; set; }

    public string? PinnedFingerprint { get; set; }

    public DateTimeOffset? PinnedAt { get; set; }

    public string? PinnedBy { get; set; }

    public string? JumpPinnedKeyType { get; set; }

    public string? JumpPinnedKey { get; set; }

    public string? JumpPinnedFingerprint { get; set; }

    /// <summary>When the host key mismatch was seen, and what ssh said.</summary>
    public DateTimeOffset? MismatchSeenAt { get; set; }

    public string? MismatchDetail { get; set; }

    /// <summary>The last "test connection" result (JSON).</summary>
    public string? LastTestJson { get; set; }

    /// <summary>The last discovery result (JSON, secrets already masked).</summary>
    public string? LastDiscoveryJson { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>Optimistic concurrency: two Admins editing at once cannot silently overwrite each other.</summary>
    public Guid Version { get; set; } = Guid.NewGuid();

    /// <summary>
    /// When an Admin deleted the target. The row stays (its runs' history refers to it) with its stored key
    /// and passphrase destroyed; every query leaves it out.
    /// </summary>
    public DateTimeOffset? DeletedAt { get; set; }
}

internal sealed class TargetConfiguration : IEntityTypeConfiguration<Target>
{
    public void Configure(EntityTypeBuilder<Target> builder)
    {
        builder.ToTable("Targets");
        builder.HasIndex(t => t.Name).IsUnique();
        builder.Property(t => t.Name).HasMaxLength(100);
        builder.Property(t => t.Product).HasMaxLength(50);
        builder.Property(t => t.Host).HasMaxLength(253);
        builder.Property(t => t.SshUser).HasMaxLength(64);
        builder.Property(t => t.AuthMethod).HasConversion<string>().HasMaxLength(20);
        builder.Property(t => t.HostKeyState).HasConversion<string>().HasMaxLength(20);
        // Existing rows become OpenSsh (what they were tested with); the entity's own default is SshNet.
        builder.Property(t => t.Transport).HasConversion<string>().HasMaxLength(20).HasDefaultValue(SshTransport.OpenSsh).HasSentinel(SshTransport.OpenSsh);
        builder.Property(t => t.Version).IsConcurrencyToken();
        builder.Property(t => t.MaintenanceWindows).HasMaxLength(2000);
        builder.Property(t => t.TimeZone).HasMaxLength(100);
        builder.Property(t => t.HostCertificateAuthority).HasMaxLength(100);
        builder.Property(t => t.UserCertificate).HasMaxLength(16000);
        builder.HasQueryFilter(t => t.DeletedAt == null);
    }
}
