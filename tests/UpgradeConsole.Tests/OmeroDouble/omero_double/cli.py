"""The `omero` command of the Omero host double. Messages and exit codes follow omero-py's
src/omero/plugins/admin.py, prefs.py and basics.py, and omero-certificates (see ../README.md)."""
import os
import re
import signal
import subprocess
import sys
import time

from . import __VERSION__, config, database

DEFAULT_WAIT = 300


def out(text="", newline=True):
    sys.stdout.write(text + ("\n" if newline else ""))
    sys.stdout.flush()


def err(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def die(rc, text):
    err(text)
    sys.exit(rc)


def omerodir():
    d = os.environ.get("OMERODIR")
    if not d:
        # omero-py falls back to a directory relative to its own files; in a venv that is never a server.
        die(1, "OMERODIR is not set")
    return d


# --- omero version (basics.py VersionControl) ----------------------------------------------------

def version(args):
    err("OMERO.py version:")
    out(__VERSION__)
    d = os.environ.get("OMERODIR")
    if d and os.path.exists(os.path.join(d, "etc", "omero.properties")):
        v = database.properties(d).get("omero.version")
        if v:
            err("OMERO.server version:")
            err(v)


# --- omero config (prefs.py) ---------------------------------------------------------------------

def is_password(key):
    return key.lower().endswith("pass") or key.lower().endswith("password")


def config_cmd(args):
    if not args:
        die(2, "usage: omero config {get,set} ...")
    d = omerodir()
    sub, rest = args[0], args[1:]
    if sub == "get":
        show = "--show-password" in rest
        keys = sorted(k for k in rest if not k.startswith("--"))
        cfg = config.read(d)
        orig = sorted(cfg)
        asked = keys
        if not keys:
            asked = [k for k in orig if k not in config.IGNORE]
        for k in asked:
            if k not in orig:
                continue
            if keys and len(keys) == 1:
                out(cfg[k])
            elif is_password(k) and not show:
                out("%s=%s" % (k, "*" * 8 if cfg[k] else ""))
            else:
                out("%s=%s" % (k, cfg[k]))
    elif sub == "set":
        if not rest:
            die(2, "usage: omero config set KEY [VALUE]")
        key = rest[0]
        value = rest[1] if len(rest) > 1 else None
        if "=" in key:
            k, v = key.split("=", 1)
            err(' "=" in key name. Did you mean "...set %s %s"?' % (k, v if value is None else value))
            return
        if re.search(r"[^A-Za-z0-9._-]", key):
            die(506, "Illegal property name: {0}".format(key))
        config.write(d, key, value)
    else:
        die(2, "omero config: unknown command %s" % sub)


# --- omero admin (admin.py) ----------------------------------------------------------------------

def pidfile(d):
    return os.path.join(d, "var", "master", "master.pid")


def running(d):
    try:
        with open(pidfile(d)) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def admin(args):
    if not args:
        die(2, "usage: omero admin {start,stop,status,diagnostics} ...")
    d = omerodir()
    sub, rest = args[0], args[1:]
    wait = DEFAULT_WAIT
    if "--wait" in rest:
        wait = float(rest[rest.index("--wait") + 1])
    if sub == "status":
        sys.exit(0 if running(d) else 1)
    if sub == "start":
        start(d, wait)
    elif sub == "stop":
        stop(d, wait)
    elif sub == "diagnostics":
        diagnostics(d)
    else:
        die(2, "omero admin: unknown command %s" % sub)


def start(d, wait):
    if running(d):
        die(876, "Server already running")
    cfg = config.read(d)
    if "omero.db.poolsize" not in cfg:
        out("WARNING: Your server has not been configured for production use.\n"
            "See https://docs.openmicroscopy.org/omero/latest/sysadmins/server-performance.html?highlight=poolsize\n"
            "for more information.")
    tls = ("Your server is configured to allow a deprecated TLS protocol.\n\nPlease refer to "
           "https://omero.readthedocs.io/en/stable/sysadmins/server-upgrade.html#server-certificates for "
           "instructions on how to upgrade your configuration.")
    protocols = cfg.get("omero.glacier2.IceSSL.Protocols")
    if protocols is None or "TLS1_0" in protocols or "TLS1_1" in protocols:
        out("WARNING: " + tls)
    for sub in ("var/log", "var/master"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    log = open(os.path.join(d, "var", "log", "master.out"), "a")
    proc = subprocess.Popen([sys.executable, "-m", "omero_double.server"], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log, start_new_session=True, env=dict(os.environ, OMERODIR=d))
    out("Waiting on startup. Use CTRL-C to exit")
    loop = wait // 30.0
    for _ in range(30 * 50):
        if running(d):
            return
        if proc.poll() is not None:
            # The real command keeps polling for the whole wait; the double stops once the server has exited.
            break
        time.sleep(0.02)
    die(43, "\nFailed to startup some components after %s seconds" % wait)


def stop(d, wait):
    pid = running(d)
    if not pid:
        err("Server not running")
        sys.exit(1)
    os.kill(pid, signal.SIGTERM)
    out("Waiting on shutdown. Use CTRL-C to exit")
    for _ in range(500):
        if not running(d):
            return
        time.sleep(0.02)
    die(44, "\nFailed to shutdown some components after %s seconds" % wait)


def item(cat, msg):
    out("%-12s" % (cat + ":"), False)
    out("%-30s " % msg, False)


def diagnostics(d):
    out("\n%s\nOMERO Diagnostics (%s)\n%s\n        " % ("=" * 80, "admin", "=" * 80))
    for cmd in (["python3", "-V"], ["psql", "--version"], ["openssl", "version"]):
        item("Commands", " ".join(cmd))
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
            out((r.stdout or r.stderr).strip())
        except OSError:
            err("not found")
    out("")
    item("Component", "OMERO.py")
    out(__VERSION__)
    item("Component", "OMERO.server")
    out(database.properties(d).get("omero.version", "unknown"))
    out("")
    item("Server", "icegridnode")
    out("running" if running(d) else "not started")
    out("")
    logdir = os.path.join(d, "var", "log")
    item("Log dir", logdir)
    if not os.path.isdir(logdir):
        out("doesn't exist")
        out("")
        out("No logs available")
        return
    out("exists")
    for name in sorted(os.listdir(logdir)):
        p = os.path.join(logdir, name)
        item("Log files", name)
        out("%-.2f MB" % (os.path.getsize(p) / 1000000.0))
        with open(p) as f:
            for line in f:
                if "ERROR" in line:
                    out("    " + line.rstrip())


# --- omero certificates (omero-certificates) -----------------------------------------------------

def certificates(args):
    try:
        import omero_certificates
    except ImportError:
        die(2, "omero: error: argument <subcommand>: invalid choice: 'certificates'")
    omero_certificates.main(omerodir(), config, out)


COMMANDS = {"version": version, "config": config_cmd, "admin": admin, "certificates": certificates}


def main():
    argv = sys.argv[1:]
    if not argv or argv[0] not in COMMANDS:
        die(2, "usage: omero {version,config,admin,certificates} ...")
    COMMANDS[argv[0]](argv[1:])
    sys.exit(0)
