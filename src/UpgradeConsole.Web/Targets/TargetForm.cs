using System.ComponentModel.DataAnnotations;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Web.Targets;

/// <summary>What an Admin fills in to add or edit a target. Validated here and again by <see cref="TargetService"/>.</summary>
public sealed class TargetForm : IValidatableObject
{
    [Required(ErrorMessage = "Give the target a name."), StringLength(100)]
    public string Name { get; set; } = "";

    public string Product { get; set; } = Fractal.FractalProduct.ProductId;

    [Required(ErrorMessage = "Enter the host name or address.")]
    public string Host { get; set; } = "";

    [Range(1, 65535, ErrorMessage = "The port is a number from 1 to 65535.")]
    public int Port { get; set; } = 22;

    [Required(ErrorMessage = "Enter the SSH user.")]
    public string SshUser { get; set; } = "";

    public TargetAuthMethod AuthMethod { get; set; } = TargetAuthMethod.StoredKey;

    /// <summary>
    /// Which SSH client reaches the target. Left out (an API client from before the choice existed): a new
    /// target gets SSH.NET (OpenSSH when it uses the dashboard user's agent), an existing one keeps its own.
    /// </summary>
    public SshTransport? Transport { get; set; }

    /// <summary>The passphrase of the stored key or key file; empty keeps the stored one (a new key without one clears it).</summary>
    public string? KeyPassphrase { get; set; }

    /// <summary>A pasted or uploaded private key; empty on edit keeps the stored one.</summary>
    public string? PrivateKey { get; set; }

    public string? KeyFilePath { get; set; }

    public string? JumpHost { get; set; }

    [Required(ErrorMessage = "Enter the directory the server runs from (fractal-server: where its env file is; OMERO: the OMERO.server path).")]
    public string WorkingDirectory { get; set; } = "";

    [Required]
    public string EnvFileName { get; set; } = ".fractal_server.env";

    public string? PythonPath { get; set; }

    [Required]
    public string ServerUrl { get; set; } = "http://127.0.0.1:8000";

    public string? ServiceUser { get; set; }

    [Required]
    public string StopCommand { get; set; } = Target.DefaultStopCommand;

    [Required]
    public string StartCommand { get; set; } = Target.DefaultStartCommand;

    [Required]
    public string StatusCommand { get; set; } = Target.DefaultStatusCommand;

    [Required]
    public string RunsDirectory { get; set; } = StepLocation.DefaultRunsDirectory;

    [Required]
    public string BackupDirectory { get; set; } = "~/upgradeconsole-backups";

    public string? PipOptions { get; set; }

    public bool RequireApproval { get; set; }

    /// <summary>A run needs a passing rehearsal newer than this many days (issue 18); empty: not asked.</summary>
    [Range(1, 3650, ErrorMessage = "Between 1 and 3650 days, or empty.")]
    public int? RequirePassingRehearsalWithinDays { get; set; }

    /// <summary>Weekly maintenance windows, one per line (<c>Sat 22:00-04:00</c>, <c>Mon-Fri 01:00-03:00</c>); empty: any time.</summary>
    public string? MaintenanceWindows { get; set; }

    /// <summary>The target's IANA time zone (Europe/Zurich); empty: UTC.</summary>
    public string? TimeZone { get; set; }

    /// <summary>SHA256 fingerprint of a host CA key the target's host certificate must be signed by (SSH.NET targets).</summary>
    public string? HostCertificateAuthority { get; set; }

    /// <summary>An OpenSSH user certificate for the key (its <c>-cert.pub</c> line); empty: none.</summary>
    public string? UserCertificate { get; set; }

    /// <summary>The version the form was loaded at (optimistic concurrency).</summary>
    public Guid Version { get; set; }

    public static TargetForm From(Target t) => new()
    {
        Name = t.Name,
        Product = t.Product,
        Host = t.Host,
        Port = t.Port,
        SshUser = t.SshUser,
        AuthMethod = t.AuthMethod,
        Transport = t.Transport,
        KeyFilePath = t.KeyFilePath,
        JumpHost = t.JumpHost,
        WorkingDirectory = t.WorkingDirectory,
        EnvFileName = t.EnvFileName,
        PythonPath = t.PythonPath,
        ServerUrl = t.ServerUrl,
        ServiceUser = t.ServiceUser,
        StopCommand = t.StopCommand,
        StartCommand = t.StartCommand,
        StatusCommand = t.StatusCommand,
        RunsDirectory = t.RunsDirectory,
        BackupDirectory = t.BackupDirectory,
        PipOptions = t.PipOptions,
        RequireApproval = t.RequireApproval,
        RequirePassingRehearsalWithinDays = t.RequirePassingRehearsalWithin is { } within ? (int)Math.Ceiling(within.TotalDays) : null,
        MaintenanceWindows = t.MaintenanceWindows,
        TimeZone = t.TimeZone,
        HostCertificateAuthority = t.HostCertificateAuthority,
        UserCertificate = t.UserCertificate,
        Version = t.Version,
    };

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        // The products plugged in (the runbook catalog) are known to the service, which checks the product first.
        if (!HostNames.IsValid(Host?.Trim()))
        {
            yield return new("This is not a host name or IP address.", [nameof(Host)]);
        }

        if (!HostNames.IsValidUser(SshUser?.Trim()))
        {
            yield return new("A user name has letters, digits, '.', '_' or '-', and does not start with '-'.", [nameof(SshUser)]);
        }

        if (Transport is { } transport && !Enum.IsDefined(transport))
        {
            yield return new("Choose SSH.NET or the System OpenSSH client.", [nameof(Transport)]);
        }

        if (AuthMethod == TargetAuthMethod.KeyFile && !IsAbsolute(KeyFilePath))
        {
            yield return new("Enter the absolute path of the key file on the dashboard host.", [nameof(KeyFilePath)]);
        }

        if (!string.IsNullOrWhiteSpace(JumpHost) && !Core.Remote.JumpHost.TryParse(JumpHost.Trim(), out _))
        {
            yield return new("Write the jump host as user@host or user@host:port.", [nameof(JumpHost)]);
        }

        if (!IsRemotePath(WorkingDirectory))
        {
            yield return new("Use an absolute path, or one starting with ~/.", [nameof(WorkingDirectory)]);
        }

        if (string.IsNullOrWhiteSpace(EnvFileName) || EnvFileName.Contains('/', StringComparison.Ordinal) || EnvFileName is "." or ".." || HasControl(EnvFileName))
        {
            yield return new("The env file name is a file name, without '/'.", [nameof(EnvFileName)]);
        }

        if (!string.IsNullOrWhiteSpace(PythonPath) && !IsRemotePath(PythonPath))
        {
            yield return new("Use an absolute path, or one starting with ~/.", [nameof(PythonPath)]);
        }

        if (!Uri.TryCreate(ServerUrl, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            yield return new("Enter an http:// or https:// address.", [nameof(ServerUrl)]);
        }

        if (!string.IsNullOrWhiteSpace(ServiceUser) && !HostNames.IsValidUser(ServiceUser.Trim()))
        {
            yield return new("A user name has letters, digits, '.', '_' or '-', and does not start with '-'.", [nameof(ServiceUser)]);
        }

        if (!IsRemotePath(RunsDirectory))
        {
            yield return new("Use an absolute path, or one starting with ~/.", [nameof(RunsDirectory)]);
        }

        if (Core.Runbooks.PipOptions.Check(PipOptions) is { } pipProblem)
        {
            yield return new(pipProblem, [nameof(PipOptions)]);
        }

        if (!IsRemotePath(BackupDirectory))
        {
            yield return new("Use an absolute path, or one starting with ~/.", [nameof(BackupDirectory)]);
        }

        if (!Core.Scheduling.MaintenanceWindows.TryParse(MaintenanceWindows, TimeZone, out _, out var windowProblem))
        {
            yield return new(windowProblem!, [windowProblem!.Contains("time zone", StringComparison.Ordinal) ? nameof(TimeZone) : nameof(MaintenanceWindows)]);
        }

        if (!string.IsNullOrWhiteSpace(HostCertificateAuthority) && !SshCertificates.IsSha256Fingerprint(HostCertificateAuthority.Trim()))
        {
            yield return new("Write the CA key's fingerprint as ssh-keygen -lf shows it: SHA256: and 43 characters.", [nameof(HostCertificateAuthority)]);
        }

        if (!string.IsNullOrWhiteSpace(UserCertificate) && SshCertificates.CheckUserCertificate(UserCertificate) is { } certificateProblem)
        {
            yield return new(certificateProblem, [nameof(UserCertificate)]);
        }
    }

    private static bool IsAbsolute(string? path) => !string.IsNullOrWhiteSpace(path) && path.StartsWith('/') && !HasControl(path);

    private static bool IsRemotePath(string? path) =>
        !string.IsNullOrWhiteSpace(path) && (path.StartsWith('/') || path.StartsWith("~/", StringComparison.Ordinal)) && !HasControl(path);

    private static bool HasControl(string value) => value.Any(char.IsControl);
}
