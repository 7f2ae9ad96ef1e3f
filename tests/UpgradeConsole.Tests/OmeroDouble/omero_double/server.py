"""Stands in for the icegridnode + Blitz processes `omero admin start` launches: it checks, as
OMERO.server does at start, that the database schema is the one this release runs on, then stays up
until stopped. Its log is var/log/Blitz-0.log under OMERODIR."""
import os
import signal
import sys
import time

from . import database


def main():
    omerodir = os.environ["OMERODIR"]
    log = os.path.join(omerodir, "var", "log", "Blitz-0.log")
    pidfile = os.path.join(omerodir, "var", "master", "master.pid")
    with open(log, "a") as out:
        expected = database.release_schema(omerodir)
        found, error = database.current_version(omerodir)
        if error is not None:
            out.write(f"ERROR cannot reach the database: {error}\n")
            sys.exit(1)
        if found != expected:
            out.write(f"ERROR DB version ({found}) does not match the version this server runs on ({expected})\n")
            sys.exit(1)
        out.write(f"INFO OMERO.blitz now accepting connections (database {found})\n")
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: (os.path.exists(pidfile) and os.remove(pidfile), sys.exit(0)))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
