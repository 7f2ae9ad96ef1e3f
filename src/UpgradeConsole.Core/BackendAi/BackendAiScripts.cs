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

    /// <summary>
    /// The manager's database settings from its own manager.toml (<c>[db]</c>: addr host/port, name, user, password,
    /// as Backend.AI's sample config has them) as libpq's environment; the password never reaches the log or a command line.
    /// </summary>
    private const string DatabaseEnvironment = """
        db_env() {
          vars=$(python3 - "$UC_CONFIG_DIR/manager.toml" <<'PY'
        import shlex, sys
        try:
            import tomllib
        except ImportError:
            sys.exit("[db] python3 has no tomllib (3.11 or later reads manager.toml)")
        try:
            with open(sys.argv[1], "rb") as f:
                db = tomllib.load(f)["db"]
            addr = db.get("addr") or {}
            pairs = (("PGHOST", addr.get("host", "127.0.0.1")), ("PGPORT", addr.get("port", 5432)), ("PGUSER", db["user"]), ("PGPASSWORD", db["password"]), ("PGDATABASE", db["name"]))
        except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
            sys.exit(f"[db] cannot read the database settings of {sys.argv[1]}: {e!r}")
        for k, v in pairs:
            print(f"export {k}={shlex.quote(str(v))}")
        PY
          ) || exit 1
          eval "$vars"
        }
        backup_file() {
          case "$UC_BACKUP_FILE" in "~/"*) echo "$HOME/${UC_BACKUP_FILE#\~/}";; *) echo "$UC_BACKUP_FILE";; esac
        }
        revision() { psql -X -q -At -c "SELECT version_num FROM alembic_version" 2>/dev/null || echo none; }

        """;

    /// <summary>
    /// The manager's database dumped (<c>pg_dump -Fc</c>, the service stopped) into <c>UC_BACKUP_FILE</c> and verified
    /// (<c>pg_restore --list</c>); the last line is <c>UC-BACKUP size= sha256= ms= path=</c> (the Fractal backup's line).
    /// </summary>
    public static string DumpDatabase => Prologue + DatabaseEnvironment + """
        db_env
        command -v pg_dump >/dev/null || { echo "[backup] pg_dump is not installed on the manager host (the postgresql-client package)" >&2; exit 1; }
        file=$(backup_file)
        dir=$(dirname -- "$file")
        mkdir -p -- "$dir"
        chmod 700 -- "$dir"
        echo "[backup] pg_dump -Fc of $PGDATABASE on $PGHOST:$PGPORT (alembic revision $(revision)) into $file"
        """ + "\n" + Runbooks.FractalScripts.DumpAndVerify;

    /// <summary>
    /// The manager's database back from the run's dump, in place: the dump's SHA-256 checked against the one recorded,
    /// the manager stopped, the other sessions of its database user ended, the public schema dropped and recreated (so
    /// tables a newer revision added go too), <c>pg_restore</c>; the alembic revision read back.
    /// </summary>
    public static string RestoreDatabase => Prologue + DatabaseEnvironment + """
        db_env
        dump=$(backup_file)
        [ -s "$dump" ] || { echo "[restore] $dump is missing or empty" >&2; exit 3; }
        actual=$(sha256sum -- "$dump" | cut -d' ' -f1)
        [ "$actual" = "$UC_BACKUP_SHA256" ] || { echo "[restore] $dump changed since it was verified (SHA-256 $actual, recorded $UC_BACKUP_SHA256); not restoring it" >&2; exit 3; }
        echo "[restore] SHA-256 matches the one recorded at backup"
        pg_restore --list "$dump" > /dev/null
        echo "[restore] stopping the manager: $UC_STOP"
        sh -c "$UC_STOP"
        echo "[restore] alembic revision before: $(revision)"
        psql -X -q -At -v ON_ERROR_STOP=1 -c "SELECT 'ended ' || count(pg_terminate_backend(pid)) || ' session(s)' FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename = current_user;"
        echo "[restore] dropping and recreating the public schema of $PGDATABASE"
        psql -X -q -v ON_ERROR_STOP=1 -1 -c "SET client_min_messages = warning; SET lock_timeout = '60s'; DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
        echo "[restore] pg_restore"
        pg_restore --no-owner --exit-on-error -d "$PGDATABASE" "$dump"
        echo "[restore] done: alembic revision $(revision)"
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
        script.Replace(Prologue, "", StringComparison.Ordinal).Replace(DatabaseEnvironment, "", StringComparison.Ordinal).Replace("$UC_VERSION", ShellWords.Quote(version), StringComparison.Ordinal);
}
