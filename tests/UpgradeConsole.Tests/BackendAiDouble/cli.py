"""Stand-in `backend.ai` (manager part) and `alembic` commands of the Backend.AI double.

Command names, options, messages and exit codes follow lablup/backend.ai's manager CLI
(src/ai/backend/manager/cli/__main__.py: the `schema` group of `backend.ai mgr`;
src/ai/backend/manager/cli/dbschema.py: `show`, `apply-missing-revisions VERSION [--dry-run]`, both with
`-f/--alembic-config`, default alembic.ini, whose sqlalchemy.url names the database). The database is reached
with psql (the real one uses SQLAlchemy); the revisions are the double's stand-ins (revisions.py)."""
import configparser, importlib.resources, json, subprocess, sys

from ai.backend.manager import __version__
from ai.backend.manager.revisions import REVISIONS, head_of


def _url(alembic_config):
    cfg = configparser.ConfigParser()
    if not cfg.read(alembic_config):
        print(f"Error: Invalid value for '-f' / '--alembic-config': File '{alembic_config}' does not exist.", file=sys.stderr)
        sys.exit(2)
    return cfg.get("alembic", "sqlalchemy.url")


def _psql(url, sql):
    done = subprocess.run(["psql", url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr.strip(), file=sys.stderr)
        sys.exit(1)
    return done.stdout.strip()


def _current(url):
    exists = _psql(url, "SELECT to_regclass('public.alembic_version') IS NOT NULL")
    return _psql(url, "SELECT version_num FROM alembic_version LIMIT 1") or None if exists == "t" else None


def _set(url, revision):
    _psql(url, f"CREATE TABLE IF NOT EXISTS alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY); DELETE FROM alembic_version; INSERT INTO alembic_version VALUES ('{revision}')")


def _option(args, short, long, default):
    for i, a in enumerate(args):
        if a in (short, long) and i + 1 < len(args):
            return args[i + 1], args[:i] + args[i + 2:]
        if a.startswith(long + "="):
            return a.split("=", 1)[1], args[:i] + args[i + 1:]
    return default, args


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] != ["mgr", "schema"] or len(args) < 3:
        print("Usage: backend.ai mgr schema [show|apply-missing-revisions VERSION] (the double knows only these)", file=sys.stderr)
        sys.exit(2)
    command, rest = args[2], args[3:]
    alembic_config, rest = _option(rest, "-f", "--alembic-config", "alembic.ini")
    url = _url(alembic_config)
    head = head_of(__version__)
    if command == "show":
        print(f"Current database revision: {_current(url)}")
        print(f"The head revision of available migrations: {head}")
        return
    if command == "apply-missing-revisions":
        dry_run = "--dry-run" in rest
        rest = [a for a in rest if a != "--dry-run"]
        if len(rest) != 1:
            print("Error: Missing argument 'VERSION'.", file=sys.stderr)
            sys.exit(2)
        previous = rest[0]
        try:
            dump = json.loads((importlib.resources.files("ai.backend.manager") / "models" / "alembic" / "revision_history" / f"{previous}.json").read_text())
        except FileNotFoundError:
            print(f"Could not find revision history dump as of Backend.AI version {previous}. Make sure you have upgraded this Backend.AI cluster to very latest version of prior major release before initiating this major upgrade.", file=sys.stderr)
            sys.exit(1)
        applied = {r["revision"] for r in dump["revisions"]}
        known = [r for r in REVISIONS if r[0] in _known_ids()]
        missing = [r for r in known if r[0] not in applied]
        print("Applying following revisions:")
        for (rev, down, since, doc) in missing:
            print(f"    {down} -> {rev}, {doc}")
        if not dry_run and missing:
            _set(url, missing[-1][0])
        return
    print(f"Error: No such command '{command}'.", file=sys.stderr)
    sys.exit(2)


def _known_ids():
    head = head_of(__version__)
    ids = []
    for (rev, down, since, doc) in REVISIONS:
        ids.append(rev)
        if rev == head:
            break
    return ids


def alembic_main(argv=None):
    """`alembic [-c alembic.ini] upgrade head | current | heads`."""
    args = list(sys.argv[1:] if argv is None else argv)
    config, args = _option(args, "-c", "--config", "alembic.ini")
    url = _url(config)
    head = head_of(__version__)
    if args == ["heads"]:
        print(f"{head} (head)")
    elif args == ["current"]:
        current = _current(url)
        print(f"{current}{' (head)' if current == head else ''}" if current else "")
    elif args == ["upgrade", "head"]:
        current = _current(url)
        chain = _known_ids()
        start = chain.index(current) + 1 if current in chain else 0
        if current is not None and current not in chain:
            print(f"ERROR [alembic.util.messaging] Can't locate revision identified by '{current}'", file=sys.stderr)
            print(f"  FAILED: Can't locate revision identified by '{current}'", file=sys.stderr)
            sys.exit(255)
        print("INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.", file=sys.stderr)
        print("INFO  [alembic.runtime.migration] Will assume transactional DDL.", file=sys.stderr)
        for (rev, down, since, doc) in [r for r in REVISIONS if r[0] in chain[start:]]:
            print(f"INFO  [alembic.runtime.migration] Running upgrade {down or ''} -> {rev}, {doc}", file=sys.stderr)
            _set(url, rev)
    else:
        print("usage: alembic [-c CONFIG] {upgrade head,current,heads} (the double knows only these)", file=sys.stderr)
        sys.exit(2)
