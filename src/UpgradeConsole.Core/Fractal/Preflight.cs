using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using UpgradeConsole.Core.Runbooks;

namespace UpgradeConsole.Core.Fractal;

public enum CheckStatus
{
    Pass,
    Warn,
    Fail,
}

/// <summary>One preflight check's verdict, in plain words, with a link to its fix where one exists.</summary>
public sealed record CheckResult(string Id, string Title, CheckStatus Status, string Explanation, string? FixUrl = null, string? FixText = null);

/// <summary>A file on the target, as read for preflight.</summary>
public sealed record RemoteFile(string Path, bool Exists, string? Text);

/// <summary>Everything preflight looks at, gathered over SSH and from the target's database.</summary>
public sealed record PreflightFacts
{
    public required int TargetId { get; init; }

    public required IReadOnlyDictionary<string, string?> Env { get; init; }

    public string? InstalledVersion { get; init; }

    public string? AliveVersion { get; init; }

    public string? AliveError { get; init; }

    /// <summary>The Python fractal-server runs with, as discovery found it.</summary>
    public string? ServerPython { get; init; }

    public string? AlembicVersion { get; init; }

    public string? DatabaseError { get; init; }

    public IReadOnlyList<UserVerdict> Users { get; init; } = [];

    public IReadOnlyList<string> SshHosts { get; init; } = [];

    /// <summary>Whether FRACTAL_SLURM_WORKER_PYTHON (if set) is an executable file on the host.</summary>
    public bool? WorkerPythonExists { get; init; }

    public RemoteFile? SlurmConfig { get; init; }

    public RemoteFile? PixiConfig { get; init; }

    public string BackupDirectory { get; init; } = "";

    public long? BackupFreeBytes { get; init; }

    public long? DatabaseSizeBytes { get; init; }

    public int? PgDumpMajor { get; init; }

    public int? ServerMajor { get; init; }

    public int? StatusExitCode { get; init; }

    public string? StatusOutput { get; init; }

    /// <summary>A run of this target that is planned or running, if any.</summary>
    public string? ActiveRun { get; init; }

    /// <summary>The target asks for a passing rehearsal newer than this before a run (issue 18); null: it does not.</summary>
    public TimeSpan? RehearsalRequiredWithin { get; init; }

    /// <summary>The target's latest passing rehearsal (which, e.g. "Rehearsal 12"), if any.</summary>
    public string? LatestPassingRehearsal { get; init; }

    /// <summary>When <see cref="LatestPassingRehearsal"/> ended.</summary>
    public DateTimeOffset? LatestPassingRehearsalEndedAt { get; init; }

    /// <summary>When the facts were gathered (what "newer than" counts from).</summary>
    public DateTimeOffset CheckedAt { get; init; }
}

/// <summary>The ids of the Fractal checks that runbooks name (the others are required by the 2.17.0 runbook as "every check").</summary>
public static class FractalCheckIds
{
    public const string BackupSpace = "backup.space";
    public const string PgDump = "backup.pg_dump";
    public const string ServiceStatus = "service.status";
    public const string RecentRehearsal = CommonChecks.RecentRehearsalId;
}

/// <summary>
/// The checks fractal-server 2.17.0 needs before the upgrade starts (fractal-2.17.md §3, §4, §6).
/// Each is a small pure function of the gathered facts.
/// </summary>
public static partial class PreflightChecks
{
    public const string Head216 = "981d588fe248";

    public static IReadOnlyList<CheckResult> Evaluate(PreflightFacts facts)
    {
        var results = new List<CheckResult>
        {
            Version(facts),
            Alembic(facts),
            Superuser(facts),
            SettingsRows(facts),
            ProfileMismatch(facts),
            BlockingUsers(facts),
            LeftOutUsers(facts),
            Backend(facts),
            WorkerPython(facts),
            TasksPython(facts),
            Directories(facts),
            SlurmConfig(facts),
            PixiConfig(facts),
            SshHosts(facts),
            BackupSpace(facts),
            PgDump(facts),
            Service(facts),
            ActiveRun(facts),
            RecentRehearsal(facts),
        };
        return results;
    }

    private static string Backend16(PreflightFacts f) => f.Env.GetValueOrDefault("FRACTAL_RUNNER_BACKEND") ?? "local";

    private static bool IsSlurm(PreflightFacts f) => Backend16(f) is "slurm" or "slurm_ssh";

    private static string Users(PreflightFacts f, string filter) => $"/targets/{f.TargetId}/users?filter={filter}";

    private static CheckResult Version(PreflightFacts f)
    {
        const string id = "version.installed";
        const string title = "fractal-server 2.16.x is installed and running";
        if (f.InstalledVersion is null)
        {
            return new(id, title, CheckStatus.Fail, "pip could not say which fractal-server is installed (see the target's discovery).", $"/targets/{f.TargetId}", "Check the target");
        }

        if (!f.InstalledVersion.StartsWith("2.16.", StringComparison.Ordinal))
        {
            return new(id, title, CheckStatus.Fail, $"pip reports fractal-server {f.InstalledVersion}; this upgrade starts from 2.16.x.");
        }

        if (f.AliveVersion is null)
        {
            return new(id, title, CheckStatus.Warn, $"pip reports {f.InstalledVersion}, but the server does not answer /api/alive/ ({f.AliveError}). The upgrade stops it anyway; check it is not crashing.");
        }

        return f.AliveVersion == f.InstalledVersion
            ? new(id, title, CheckStatus.Pass, $"pip and /api/alive/ both report {f.InstalledVersion}.")
            : new(id, title, CheckStatus.Fail, $"pip reports {f.InstalledVersion} but the running server says {f.AliveVersion}: the server was not restarted after an install, or runs from another environment.");
    }

    private static CheckResult Alembic(PreflightFacts f)
    {
        const string id = "db.alembic";
        const string title = $"The database is at the 2.16 schema ({Head216})";
        if (f.DatabaseError is not null)
        {
            return new(id, title, CheckStatus.Fail, "The database could not be read: " + f.DatabaseError);
        }

        return f.AlembicVersion == Head216
            ? new(id, title, CheckStatus.Pass, $"alembic_version is {Head216}, the head of 2.16.0–2.16.6.")
            : new(id, title, CheckStatus.Fail, $"alembic_version is {f.AlembicVersion ?? "missing"}, not {Head216}: run `fractalctl set-db` with the installed 2.16 first, or this is not a 2.16 database.");
    }

    private static CheckResult Superuser(PreflightFacts f)
    {
        var admins = f.Users.Where(v => v.User.IsSuperuser && v.Outcome == MigrationOutcome.Migrated).Select(v => v.User.Email).ToList();
        return admins.Count > 0
            ? new("users.superuser", "An active, verified superuser remains", CheckStatus.Pass, $"{string.Join(", ", admins)} can sign in and administer 2.17.")
            : new("users.superuser", "An active, verified superuser remains", CheckStatus.Fail,
                "No superuser is active, verified and migrated: after the upgrade nobody could administer Fractal.", Users(f, "all"), "Fix the users");
    }

    private static CheckResult SettingsRows(PreflightFacts f)
    {
        var missing = f.Users.Where(v => v.Outcome == MigrationOutcome.Blocks && v.User.SettingsId is null).Select(v => v.User.Email).ToList();
        return missing.Count == 0
            ? new("users.settings-rows", "Every active, verified user has a settings row", CheckStatus.Pass, "No user_settings row is missing.")
            : new("users.settings-rows", "Every active, verified user has a settings row", CheckStatus.Fail,
                $"{missing.Count} user(s) have no settings row, and update-db-data stops on the first: {string.Join(", ", missing.Take(10))}.", Users(f, "blocking"), "Create the rows");
    }

    private static CheckResult ProfileMismatch(PreflightFacts f)
    {
        var mismatch = f.Users.Where(v => v.Reasons.Any(r => r.Contains("profile data mismatch", StringComparison.Ordinal))).Select(v => v.User.Email).ToList();
        return mismatch.Count == 0
            ? new("users.profile-mismatch", "Users sharing a username share their settings", CheckStatus.Pass, "No profile data mismatch.")
            : new("users.profile-mismatch", "Users sharing a username share their settings", CheckStatus.Fail,
                $"These users share a username but not their SSH settings, so update-db-data stops with \"Profile data mismatch\": {string.Join(", ", mismatch.Take(10))}.", Users(f, "blocking"), "Fix the users");
    }

    private static CheckResult BlockingUsers(PreflightFacts f)
    {
        var blocking = f.Users.Where(v => v.Outcome == MigrationOutcome.Blocks).ToList();
        return blocking.Count == 0
            ? new("users.blocking", "Every active, verified user has what the backend needs", CheckStatus.Pass,
                $"{f.Users.Count(v => v.Outcome == MigrationOutcome.Migrated)} user(s) will be migrated.")
            : new("users.blocking", "Every active, verified user has what the backend needs", CheckStatus.Fail,
                $"{blocking.Count} active, verified user(s) would stop update-db-data with exit 1, e.g. {blocking[0].User.Email}: {blocking[0].Reasons[0]}.",
                Users(f, "blocking"), "Fix the blocking users");
    }

    private static CheckResult LeftOutUsers(PreflightFacts f)
    {
        var left = f.Users.Where(v => v.Outcome == MigrationOutcome.LeftOut).ToList();
        return left.Count == 0
            ? new("users.left-out", "No user loses access", CheckStatus.Pass, "Every user is active and verified.")
            : new("users.left-out", "No user loses access", CheckStatus.Warn,
                $"{left.Count} user(s) are not active and verified; 2.17.0 leaves them without a profile, so they cannot work after the upgrade. Mark the real ones active and verified.",
                Users(f, "left-out"), "Review them");
    }

    private static CheckResult Backend(PreflightFacts f)
    {
        var backend = Backend16(f);
        return backend switch
        {
            "slurm" => new("env.backend", "The runner backend is a SLURM one", CheckStatus.Pass, "FRACTAL_RUNNER_BACKEND=slurm; it becomes slurm_sudo in 2.17."),
            "slurm_ssh" => new("env.backend", "The runner backend is a SLURM one", CheckStatus.Pass, "FRACTAL_RUNNER_BACKEND=slurm_ssh; it stays slurm_ssh in 2.17."),
            "local" => new("env.backend", "The runner backend is a SLURM one", CheckStatus.Fail,
                "FRACTAL_RUNNER_BACKEND is local: the 2.17.0 upgrade guide supports the automatic data migration only for SLURM instances; upgrade a local instance by hand."),
            _ => new("env.backend", "The runner backend is a SLURM one", CheckStatus.Fail, $"FRACTAL_RUNNER_BACKEND={backend} is not a 2.16 value (local, slurm, slurm_ssh): fractal-server would not even start."),
        };
    }

    private static CheckResult WorkerPython(PreflightFacts f)
    {
        const string id = "env.worker-python";
        const string title = "FRACTAL_SLURM_WORKER_PYTHON is set and present";
        var value = f.Env.GetValueOrDefault("FRACTAL_SLURM_WORKER_PYTHON");
        if (!IsSlurm(f))
        {
            return new(id, title, CheckStatus.Pass, "Not needed for this backend.");
        }

        if (string.IsNullOrWhiteSpace(value))
        {
            return f.ServerPython is not null
                ? new(id, title, CheckStatus.Warn, $"It is not set; update-db-data needs it in .fractal_server.env.old. The run adds FRACTAL_SLURM_WORKER_PYTHON={f.ServerPython} (the interpreter fractal-server runs with) to the .old copy.")
                : new(id, title, CheckStatus.Fail, "It is not set and the server's Python is unknown; update-db-data stops with a KeyError. Set the target's Python path.", $"/targets/{f.TargetId}/edit", "Edit the target");
        }

        if (!value.StartsWith('/'))
        {
            return new(id, title, CheckStatus.Fail, $"'{value}' is not an absolute path.");
        }

        return f.WorkerPythonExists == true
            ? new(id, title, CheckStatus.Pass, $"{value} exists.")
            : new(id, title, CheckStatus.Fail, $"{value} is not an executable file on the host.");
    }

    private static CheckResult TasksPython(PreflightFacts f)
    {
        const string id = "env.tasks-python";
        const string title = "The default tasks Python is set with its interpreter";
        var version = f.Env.GetValueOrDefault("FRACTAL_TASKS_PYTHON_DEFAULT_VERSION");
        if (string.IsNullOrWhiteSpace(version))
        {
            return new(id, title, CheckStatus.Fail, "FRACTAL_TASKS_PYTHON_DEFAULT_VERSION is not set; 2.16 allowed that, but update-db-data stops with a KeyError.");
        }

        if (version == "3.13")
        {
            return new(id, title, CheckStatus.Fail, "The default is 3.13, but update-db-data reads only FRACTAL_TASKS_PYTHON_3_9 to _3_12, so validation fails. Choose 3.12 or older as the default.");
        }

        var key = "FRACTAL_TASKS_PYTHON_" + version.Replace('.', '_');
        var path = f.Env.GetValueOrDefault(key);
        if (string.IsNullOrWhiteSpace(path))
        {
            return new(id, title, CheckStatus.Fail, $"The default is {version} but {key} is not set.");
        }

        return path.StartsWith('/')
            ? new(id, title, CheckStatus.Pass, $"{version} → {path}.")
            : new(id, title, CheckStatus.Fail, $"{key}='{path}' is not absolute.");
    }

    private static CheckResult Directories(PreflightFacts f)
    {
        var problems = new List<string>();
        foreach (var key in new[] { "FRACTAL_TASKS_DIR", "FRACTAL_RUNNER_WORKING_BASE_DIR" })
        {
            var value = f.Env.GetValueOrDefault(key);
            if (string.IsNullOrWhiteSpace(value))
            {
                problems.Add($"{key} is not set");
            }
            else if (!value.StartsWith('/'))
            {
                problems.Add($"{key}='{value}' is relative (2.16 resolved it against the working directory; 2.17.0 refuses it)");
            }
        }

        return problems.Count == 0
            ? new("env.dirs", "Tasks and jobs directories are absolute", CheckStatus.Pass, "Both are absolute paths.")
            : new("env.dirs", "Tasks and jobs directories are absolute", CheckStatus.Fail, string.Join("; ", problems) + ".");
    }

    private static CheckResult SlurmConfig(PreflightFacts f)
    {
        const string id = "env.slurm-config";
        const string title = "The SLURM config passes 2.17's stricter rules";
        if (!IsSlurm(f))
        {
            return new(id, title, CheckStatus.Pass, "Not needed for this backend.");
        }

        if (f.SlurmConfig is null)
        {
            return new(id, title, CheckStatus.Fail, "FRACTAL_SLURM_CONFIG_FILE is not set; update-db-data needs it.");
        }

        if (!f.SlurmConfig.Exists || f.SlurmConfig.Text is null)
        {
            return new(id, title, CheckStatus.Fail, $"{f.SlurmConfig.Path} does not exist on the host.");
        }

        var problems = SlurmConfigProblems(f.SlurmConfig.Text);
        return problems.Count == 0
            ? new(id, title, CheckStatus.Pass, $"{f.SlurmConfig.Path} is valid for 2.16 and 2.17.")
            : new(id, title, CheckStatus.Fail, $"{f.SlurmConfig.Path}: {string.Join("; ", problems)}.");
    }

    /// <summary>The 2.16 SlurmConfigFile shape, plus 2.17's refusals (fractal-2.17.md §6.2).</summary>
    public static IReadOnlyList<string> SlurmConfigProblems(string json)
    {
        var problems = new List<string>();
        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(json);
            root = document.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            return [$"not valid JSON ({ex.Message})"];
        }

        if (root.ValueKind != JsonValueKind.Object)
        {
            return ["not a JSON object"];
        }

        string[] topLevel = ["default_slurm_config", "gpu_slurm_config", "batching_config", "user_local_exports"];
        string[] slurmKeys = ["partition", "cpus_per_task", "mem", "constraint", "gres", "exclude", "nodelist", "time", "account", "extra_lines", "gpus"];
        string[] batchingKeys = ["target_cpus_per_job", "max_cpus_per_job", "target_mem_per_job", "max_mem_per_job", "target_num_jobs", "max_num_jobs"];
        foreach (var property in root.EnumerateObject().Where(p => !topLevel.Contains(p.Name)))
        {
            problems.Add($"unknown key '{property.Name}'");
        }

        foreach (var section in new[] { "default_slurm_config", "gpu_slurm_config" })
        {
            if (!root.TryGetProperty(section, out var block) || block.ValueKind == JsonValueKind.Null)
            {
                if (section == "default_slurm_config")
                {
                    problems.Add("default_slurm_config is missing");
                }

                continue;
            }

            foreach (var property in block.EnumerateObject())
            {
                if (!slurmKeys.Contains(property.Name))
                {
                    problems.Add($"{section}.{property.Name} is not a known key");
                }
                else if (property.Name == "extra_lines" && property.Value.ValueKind == JsonValueKind.Null)
                {
                    problems.Add($"{section}.extra_lines is null (2.17 needs a list, e.g. [])");
                }
                else if (property.Name is "cpus_per_task" && (property.Value.ValueKind != JsonValueKind.Number || property.Value.GetDouble() <= 0))
                {
                    problems.Add($"{section}.cpus_per_task must be a positive integer");
                }
                else if (property.Name == "mem" && !IsMemory(property.Value))
                {
                    problems.Add($"{section}.mem must be MB as an integer or a string like 4G");
                }
            }
        }

        if (!root.TryGetProperty("batching_config", out var batching) || batching.ValueKind != JsonValueKind.Object)
        {
            problems.Add("batching_config is missing");
        }
        else
        {
            foreach (var key in batchingKeys.Where(k => !batching.TryGetProperty(k, out var v) || v.ValueKind == JsonValueKind.Null))
            {
                problems.Add($"batching_config.{key} is missing");
            }
        }

        if (root.TryGetProperty("user_local_exports", out var exports) && exports.ValueKind == JsonValueKind.Null)
        {
            problems.Add("user_local_exports is null (2.17 needs an object, e.g. {})");
        }

        return problems;
    }

    private static bool IsMemory(JsonElement value) =>
        value.ValueKind == JsonValueKind.Number ? value.GetDouble() > 0
        : value.ValueKind == JsonValueKind.String && MemoryString().IsMatch(value.GetString()!);

    private static CheckResult PixiConfig(PreflightFacts f)
    {
        const string id = "env.pixi-config";
        const string title = "The pixi config, if set, exists and parses";
        if (f.PixiConfig is null)
        {
            return new(id, title, CheckStatus.Pass, "FRACTAL_PIXI_CONFIG_FILE is not set.");
        }

        if (!f.PixiConfig.Exists || f.PixiConfig.Text is null)
        {
            return new(id, title, CheckStatus.Fail, $"{f.PixiConfig.Path} does not exist on the host.");
        }

        try
        {
            using var document = JsonDocument.Parse(f.PixiConfig.Text);
            var root = document.RootElement;
            if (!root.TryGetProperty("default_version", out var version) || version.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("versions", out var versions) || versions.ValueKind != JsonValueKind.Object
                || !versions.TryGetProperty(version.GetString()!, out _))
            {
                return new(id, title, CheckStatus.Fail, $"{f.PixiConfig.Path} needs default_version and a versions entry for it.");
            }

            if (Backend16(f) == "slurm_ssh" && !root.TryGetProperty("SLURM_CONFIG", out _))
            {
                return new(id, title, CheckStatus.Fail, $"{f.PixiConfig.Path} has no SLURM_CONFIG, which slurm_ssh needs.");
            }

            return new(id, title, CheckStatus.Pass, $"{f.PixiConfig.Path} parses (default {version.GetString()}).");
        }
        catch (JsonException ex)
        {
            return new(id, title, CheckStatus.Fail, $"{f.PixiConfig.Path} is not valid JSON ({ex.Message}).");
        }
    }

    private static CheckResult SshHosts(PreflightFacts f)
    {
        if (Backend16(f) != "slurm_ssh")
        {
            return new("db.ssh-hosts", "slurm_ssh: users name an SSH host", CheckStatus.Pass, "Not needed for this backend.");
        }

        return f.SshHosts.Count > 0
            ? new("db.ssh-hosts", "slurm_ssh: users name an SSH host", CheckStatus.Pass, $"The resource will use the most frequent ssh_host, {f.SshHosts[0]}" + (f.SshHosts.Count > 1 ? $" (others: {string.Join(", ", f.SshHosts.Skip(1))})." : "."))
            : new("db.ssh-hosts", "slurm_ssh: users name an SSH host", CheckStatus.Fail, "No user_settings row has an ssh_host: update-db-data stops with an IndexError.", Users(f, "all"), "Review the users");
    }

    private static CheckResult BackupSpace(PreflightFacts f)
    {
        const string id = FractalCheckIds.BackupSpace;
        const string title = "Room for the backup";
        if (f.BackupFreeBytes is null || f.DatabaseSizeBytes is null)
        {
            return new(id, title, CheckStatus.Fail, $"Could not measure the free space in {f.BackupDirectory} or the database size.");
        }

        var needed = 2 * f.DatabaseSizeBytes.Value;
        return f.BackupFreeBytes >= needed
            ? new(id, title, CheckStatus.Pass, $"{Size(f.BackupFreeBytes.Value)} free in {f.BackupDirectory}; the database is {Size(f.DatabaseSizeBytes.Value)}.")
            : new(id, title, CheckStatus.Fail, $"Only {Size(f.BackupFreeBytes.Value)} free in {f.BackupDirectory}; twice the database size ({Size(needed)}) is needed.", $"/targets/{f.TargetId}/edit", "Choose another backup directory");
    }

    private static CheckResult PgDump(PreflightFacts f)
    {
        if (f.PgDumpMajor is null)
        {
            return new(FractalCheckIds.PgDump, "pg_dump is available", CheckStatus.Fail, "pg_dump was not found on the host (install the PostgreSQL client).");
        }

        return f.ServerMajor is null || f.PgDumpMajor >= f.ServerMajor
            ? new(FractalCheckIds.PgDump, "pg_dump is available", CheckStatus.Pass, $"pg_dump {f.PgDumpMajor}, server {f.ServerMajor?.ToString(CultureInfo.InvariantCulture) ?? "unknown"}.")
            : new(FractalCheckIds.PgDump, "pg_dump is available", CheckStatus.Fail, $"pg_dump {f.PgDumpMajor} is older than the server ({f.ServerMajor}) and would refuse to dump it.");
    }

    private static CheckResult Service(PreflightFacts f) =>
        f.StatusExitCode == 0
            ? new(FractalCheckIds.ServiceStatus, "The service status command works", CheckStatus.Pass, $"It says: {f.StatusOutput?.Trim()}.")
            : new(FractalCheckIds.ServiceStatus, "The service status command works", CheckStatus.Fail,
                $"It exited with {f.StatusExitCode?.ToString(CultureInfo.InvariantCulture) ?? "no code"}: {f.StatusOutput?.Trim()}. The run stops and starts the service with the target's commands.", $"/targets/{f.TargetId}/edit", "Edit the commands");

    private static CheckResult ActiveRun(PreflightFacts f) =>
        f.ActiveRun is null
            ? new(UpgradeConsole.Core.Runbooks.CommonChecks.ActiveRun, "No run is active on this target", CheckStatus.Pass, "No other run is planned or running.")
            : new(UpgradeConsole.Core.Runbooks.CommonChecks.ActiveRun, "No run is active on this target", CheckStatus.Fail, $"{f.ActiveRun} is active; finish or abandon it first.");

    /// <summary>Issue 18: a passing rehearsal newer than the target asks for (<see cref="CommonChecks.RecentRehearsal"/>).</summary>
    public static CheckResult RecentRehearsal(PreflightFacts f) =>
        CommonChecks.RecentRehearsal(f.TargetId, f.RehearsalRequiredWithin, f.LatestPassingRehearsal, f.LatestPassingRehearsalEndedAt, f.CheckedAt);

    private static string Size(long bytes) => bytes >= 1L << 30
        ? (bytes / (double)(1L << 30)).ToString("0.0", CultureInfo.InvariantCulture) + " GiB"
        : (bytes / (double)(1L << 20)).ToString("0.0", CultureInfo.InvariantCulture) + " MiB";

    [GeneratedRegex(@"^\s*[0-9]+(\.[0-9]+)?\s*[KMGT]?\s*$", RegexOptions.IgnoreCase)]
    private static partial Regex MemoryString();
}
