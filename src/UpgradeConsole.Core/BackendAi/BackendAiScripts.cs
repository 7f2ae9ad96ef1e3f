using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Core.BackendAi;

/// <summary>What one host's step needs of that host (its own settings, from the cluster's host list).</summary>
public sealed record BackendAiHostStep(IReadOnlyList<string> Roles, string PythonEnv, string ConfigPath, string StopCommand, string StartCommand, string StatusCommand)
{
    /// <summary>
    /// The host's settings as the step's environment: the scripts below are fixed text and read these (values never
    /// become shell text; the service commands are the Admin's own command lines, run as written by <c>sh -c</c>).
    /// </summary>
    public IReadOnlyDictionary<string, string> Environment(string version, string? pipOptions) => new Dictionary<string, string>
    {
        ["UC_PY"] = ClusterDiscovery.PythonOf(PythonEnv),
        ["UC_PACKAGES"] = string.Join(' ', Roles.Select(BackendAiScripts.PackageOf)),
        ["UC_VERSION"] = version,
        ["UC_CONFIG_DIR"] = ConfigDirectory,
        ["UC_STOP"] = StopCommand,
        ["UC_START"] = StartCommand,
        ["UC_STATUS"] = StatusCommand,
        ["UC_PIP_OPTIONS"] = pipOptions ?? "",
    };

    /// <summary>The directory of the host's configuration (where the manager's alembic.ini lives beside manager.toml).</summary>
    public string ConfigDirectory
    {
        get
        {
            var path = ConfigPath.Trim().TrimEnd('/');
            var slash = path.LastIndexOf('/');
            return slash > 0 ? path[..slash] : "/";
        }
    }
}

/// <summary>
/// The shell steps of Backend.AI's runbooks (runbooks.md, "Backend.AI cluster"): each host's own settings arrive in
/// the environment (<see cref="BackendAiHostStep.Environment"/>), so every script here is fixed text. pip is the
/// environment's own (<c>python -m pip</c>) or, for an environment made without pip, the system's
/// (<c>pip --python</c>); the target's pip options (an index, find-links) are split into words, never globbed.
/// </summary>
public static class BackendAiScripts
{
    /// <summary>The package of a role: <c>backend.ai-&lt;role&gt;</c> (runbooks.md; ADR 0024).</summary>
    public static string PackageOf(string role) => "backend.ai-" + role;

    private const string Prologue = """
        set -eu
        set -f
        py=$UC_PY
        bindir=$(dirname "$py")
        pip_install() {
          if "$py" -m pip --version >/dev/null 2>&1; then "$py" -m pip install $UC_PIP_OPTIONS "$@"
          else python3 -m pip --python "$py" install $UC_PIP_OPTIONS "$@"; fi
        }
        installed() {
          "$py" -c 'import sys, importlib.metadata as m
        print(m.version(sys.argv[1]))' "$1" 2>/dev/null || echo none
        }

        """;

    /// <summary>Stops the host's components with its stop command, as written.</summary>
    public static string Stop => Prologue + """
        echo "[stop] $UC_STOP"
        sh -c "$UC_STOP"
        echo "[stop] stopped"
        """;

    /// <summary>Starts the host's components with its start command, as written.</summary>
    public static string Start => Prologue + """
        echo "[start] $UC_START"
        sh -c "$UC_START"
        echo "[start] started"
        """;

    /// <summary><c>pip install -U backend.ai-&lt;role&gt;==V</c> for each of the host's roles, then each package's version read back.</summary>
    public static string Install => Prologue + """
        for pkg in $UC_PACKAGES; do
          echo "[install] $pkg $(installed "$pkg") -> $UC_VERSION"
          pip_install -U "$pkg==$UC_VERSION"
          now=$(installed "$pkg")
          if [ "$now" != "$UC_VERSION" ]; then echo "[install] $pkg is at $now after pip, expected $UC_VERSION" >&2; exit 1; fi
          echo "[install] $pkg is at $now"
        done
        """;

    /// <summary>
    /// The health check after a restart: the status command must succeed within <paramref name="seconds"/>
    /// (a component takes a moment to come up); its last output is in the log either way.
    /// </summary>
    public static string Health(int seconds) => Prologue + $$"""
        deadline=$(( $(date +%s) + {{seconds}} ))
        while :; do
          if out=$(sh -c "$UC_STATUS" 2>&1); then echo "[health] $out"; echo "[health] healthy"; exit 0; fi
          if [ "$(date +%s)" -ge "$deadline" ]; then echo "[health] $out"; echo "[health] not healthy after {{seconds}} s" >&2; exit 1; fi
          sleep 1
        done
        """;

    /// <summary>Several of these steps as one script (one prologue; the first failure ends it).</summary>
    public static string Then(params string[] scripts) =>
        Prologue + string.Join("\n", scripts.Select(s => s.Replace(Prologue, "", StringComparison.Ordinal)));

    /// <summary>
    /// A host already on the version with its service healthy is left alone (a retried phase runs only the hosts that
    /// failed or were not reached; the ones done are not stopped again).
    /// </summary>
    public static string SkipWhenDone => Prologue + """
        done_already=yes
        for pkg in $UC_PACKAGES; do [ "$(installed "$pkg")" = "$UC_VERSION" ] || done_already=no; done
        if [ "$done_already" = yes ] && sh -c "$UC_STATUS" >/dev/null 2>&1; then echo "[skip] already on $UC_VERSION and healthy"; exit 0; fi
        """;

    /// <summary>A rolling host's whole turn: stop, install the version, start, health check (minor runbook); a host done already is skipped.</summary>
    public static string RollHost(int healthSeconds) => Then(SkipWhenDone, Stop, Install, Start, Health(healthSeconds));

    /// <summary>
    /// The schema change check before anything stops: the new manager package's alembic head (from a scratch
    /// environment, removed afterwards) against the database's current revision, through the manager's own
    /// <c>backend.ai mgr schema show</c> and the scratch environment's <c>alembic heads</c>.
    /// </summary>
    public static string SchemaCheck => Prologue + """
        scratch=$(mktemp -d "${TMPDIR:-/tmp}/uc-bai-schema.XXXXXX")
        trap 'rm -rf "$scratch"' EXIT
        python3 -m venv --without-pip "$scratch/venv"
        py_new="$scratch/venv/bin/python"
        python3 -m pip --python "$py_new" install -q $UC_PIP_OPTIONS "backend.ai-manager==$UC_VERSION"
        cd "$UC_CONFIG_DIR"
        "$bindir/backend.ai" mgr schema show -f alembic.ini
        head=$("$scratch/venv/bin/alembic" -c alembic.ini heads | awk '{print $1}' | head -n 1)
        echo "[schema] the head of backend.ai-manager $UC_VERSION: $head"
        """;

    /// <summary><c>alembic upgrade head</c> in the manager's configuration directory (its alembic.ini), then the revision shown.</summary>
    public static string AlembicUpgrade => Prologue + """
        cd "$UC_CONFIG_DIR"
        echo "[alembic] alembic upgrade head"
        "$bindir/alembic" -c alembic.ini upgrade head
        "$bindir/backend.ai" mgr schema show -f alembic.ini
        """;

    /// <summary>
    /// The major upgrade's <c>backend.ai mgr schema apply-missing-revisions PREVIOUS</c> (the guide prints it as
    /// "apply-mission-revisions", a typo: the real command is this one), <c>UC_PREVIOUS</c> the version upgraded from.
    /// </summary>
    public static string ApplyMissingRevisions => Prologue + """
        cd "$UC_CONFIG_DIR"
        echo "[schema] backend.ai mgr schema apply-missing-revisions $UC_PREVIOUS"
        "$bindir/backend.ai" mgr schema apply-missing-revisions "$UC_PREVIOUS" -f alembic.ini
        "$bindir/backend.ai" mgr schema show -f alembic.ini
        """;

    /// <summary>The plan's words for a script, the host settings as placeholders (the commands shown are the ones that run).</summary>
    public static string Preview(string script, string version) =>
        script.Replace(Prologue, "", StringComparison.Ordinal).Replace("$UC_VERSION", ShellWords.Quote(version), StringComparison.Ordinal);
}
