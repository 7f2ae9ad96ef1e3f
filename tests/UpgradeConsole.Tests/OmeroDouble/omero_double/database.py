"""The database as the server and CLI double see it: connection settings from config.xml
(omero.db.*, OMERO's defaults otherwise) and psql, the way the host's own tools reach it."""
import os
import subprocess

from . import config


def env(omerodir):
    c = config.read(omerodir)
    e = dict(os.environ)
    e["PGHOST"] = c.get("omero.db.host") or "localhost"
    e["PGPORT"] = c.get("omero.db.port") or "5432"
    e["PGDATABASE"] = c.get("omero.db.name") or "omero"
    e["PGUSER"] = c.get("omero.db.user") or "omero"
    e["PGPASSWORD"] = c.get("omero.db.pass") or ""
    return e


def current_version(omerodir):
    r = subprocess.run(
        ["psql", "-X", "-q", "-At", "-c", "SELECT currentversion || '__' || currentpatch FROM dbpatch ORDER BY id DESC LIMIT 1"],
        env=env(omerodir), capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return r.stdout.strip(), None


def properties(omerodir):
    props = {}
    with open(os.path.join(omerodir, "etc", "omero.properties")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                props[k] = v
    return props


def release_schema(omerodir):
    p = properties(omerodir)
    return f"{p['omero.db.version']}__{p['omero.db.patch']}"
