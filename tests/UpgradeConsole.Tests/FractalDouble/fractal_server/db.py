"""The double's database access: the real PostgreSQL through the real psql client (no driver on the host)."""
import json
import os
import subprocess
import sys


class DbError(Exception):
    pass


def connection_env(settings):
    env = dict(os.environ)
    env["PGHOST"] = settings.get("POSTGRES_HOST") or "localhost"
    env["PGPORT"] = str(settings.get("POSTGRES_PORT") or "5432")
    if settings.get("POSTGRES_USER"):
        env["PGUSER"] = settings["POSTGRES_USER"]
    if settings.get("POSTGRES_PASSWORD") is not None:
        env["PGPASSWORD"] = settings["POSTGRES_PASSWORD"]
    env["PGDATABASE"] = settings["POSTGRES_DB"]
    return env


def run(settings, script, variables=None):
    """Runs SQL (one transaction if the script says so); variables are quoted by psql itself (:'name')."""
    args = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    for name, value in (variables or {}).items():
        args += ["-v", f"{name}={'' if value is None else value}"]
    done = subprocess.run(args + ["-f", "-"], input=script, text=True, capture_output=True, env=connection_env(settings))
    if done.returncode != 0:
        raise DbError(done.stderr.strip())
    return done.stdout


def rows(settings, query, variables=None):
    out = run(settings, f"SELECT coalesce(json_agg(t), '[]') FROM ({query}) t;", variables)
    return json.loads(out.strip() or "[]")


def scalar(settings, query, variables=None):
    out = run(settings, query + ";", variables).strip()
    return out if out else None


def fail(message):
    sys.stderr.write(message + "\n")
    sys.exit(1)
