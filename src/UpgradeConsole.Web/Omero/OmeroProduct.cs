using UpgradeConsole.Core.Omero;
using UpgradeConsole.Web.Runbooks;

namespace UpgradeConsole.Web.Omero;

/// <summary>OMERO.server, plugged in: its runbook and its part of the plan page.</summary>
public sealed class OmeroProduct : IProduct
{
    public const string ProductId = "omero";

    public static OmeroProduct Instance { get; } = new();

    public string Id => ProductId;

    public string Title => "OMERO.server";

    public IReadOnlyList<RunbookDefinition> Runbooks => OmeroRunbooks.All;

    public IReadOnlyList<ProductPage> TargetPages { get; } = [];

    public Type? PlanSection => typeof(OmeroPlanSection);

    /// <summary>OMERO's settings on the server: OMERODIR, the venv's Python; it is stopped and started with <c>omero admin</c>, it has no env file.</summary>
    public TargetFieldWords TargetFields { get; } = new()
    {
        HostPlaceholder = "omero.example.org",
        NamePlaceholder = "omero-prod",
        WorkingDirectory = "OMERO.server path (OMERODIR, the symlink the releases are unpacked beside)",
        WorkingDirectoryPlaceholder = "/opt/omero/server/OMERO.server",
        PythonPath = "Python of OMERO's venv (the one holding omero-py)",
        PythonPlaceholder = "/opt/omero/server/venv3/bin/python",
        UsesEnvFileAndServiceCommands = false,
    };
}

/// <summary>
/// What the OMERO phases' previews need from the plan: the upgrade as planned (its run id a placeholder
/// until the run exists) and what discovery found (passwords already masked).
/// </summary>
public sealed record OmeroPlanFacts(OmeroUpgradePlan Plan, OmeroDiscoveryResult Discovery)
{
    /// <summary>The release zip is on the host now (else the preflight says so and the switch phase would fail).</summary>
    public bool ReleasePresent { get; init; }
}

/// <summary>What the plan recorded for the run's phases (no secrets): enough to write the same scripts again.</summary>
public sealed record OmeroPlanSnapshot
{
    /// <summary>The release zip on the host.</summary>
    public string ReleaseZip { get; init; } = "";

    public string TargetVersion { get; init; } = "";

    /// <summary>The dbpatch version before the upgrade (<c>OMERO5.3__0</c>): where a restore must bring the database back.</summary>
    public string CurrentDb { get; init; } = "";

    /// <summary>The optional VACUUM FULL was chosen on the plan.</summary>
    public bool Vacuum { get; init; }

    public string? OmeroPyMinimum { get; init; }

    public long? DatabaseSize { get; init; }

    /// <summary>The production database's name (omero.db.name): a rehearsal's scratch database and dumps are named after it.</summary>
    public string? Database { get; init; }

    /// <summary>Where the run's first phase downloads the zip from (the configured URL), when it was not on the host at planning.</summary>
    public string? DownloadUrl { get; init; }
}
