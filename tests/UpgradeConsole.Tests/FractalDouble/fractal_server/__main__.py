"""fractalctl of the test double: argparse subcommands, exit codes as in fractal-2.17.md §5."""
import argparse
import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fractal_server import __VERSION__


def read_env_file(path=".fractal_server.env"):
    """The subset of python-dotenv the double needs: KEY=VALUE lines, export, quotes, comments."""
    values = {}
    if not os.path.exists(path):
        return values
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            if line.startswith("export "):
                line = line[len("export "):].lstrip()
            key, value = line.split("=", 1)
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            elif " #" in value:
                value = value.split(" #", 1)[0].rstrip()
            values[key.strip()] = value
    return values


class AliveHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.rstrip("/") == "/api/alive":
            body = json.dumps({"alive": True, "version": __VERSION__}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, fmt, *args):
        sys.stderr.write("fractal-server double: " + (fmt % args) + "\n")


def start(args):
    settings = read_env_file()
    if "JWT_SECRET_KEY" not in settings and "JWT_SECRET_KEY" not in os.environ:
        sys.exit("JWT_SECRET_KEY is required")
    server = ThreadingHTTPServer((args.host, args.port), AliveHandler)
    print(f"fractal-server {__VERSION__} listening on {args.host}:{args.port}", flush=True)
    server.serve_forever()


def is_2_17():
    return not __VERSION__.startswith("2.16")


def alembic_head(settings):
    from fractal_server import db, migrations
    current = db.scalar(settings, "SELECT version_num FROM alembic_version")
    known = [migrations.HEAD_2_16] + ([migrations.HEAD_2_17_0] if is_2_17() else [])
    if current not in known:
        # alembic's CommandError: printed as FAILED and exit 255 (fractal-2.17.md §5).
        sys.stderr.write(f"FAILED: Can't locate revision identified by '{current}'\n")
        sys.exit(255)
    return current


def set_db(args):
    from fractal_server import db, migrations, settings as config
    if is_2_17():
        settings = config.load_2_17()
        print(f"fractalctl set-db: fractal-server {__VERSION__}", flush=True)
        if alembic_head(settings) == migrations.HEAD_2_16:
            db.run(settings, migrations.UPGRADE_2_17_0)
            print(f"Running upgrade {migrations.HEAD_2_16} -> {migrations.HEAD_2_17_0}, 2.17.0", flush=True)
        print("Database is at head.", flush=True)
        return
    settings = config.load_2_16()
    if not settings.get("POSTGRES_DB"):
        db.fail("fractal_server.config.FractalConfigurationError: POSTGRES_DB cannot be None.")
    alembic_head(settings)
    print("Database is at head.", flush=True)
    if args.skip_init_data:
        return
    db.run(settings, "INSERT INTO usergroup (name, timestamp_created) SELECT 'All', now() WHERE NOT EXISTS (SELECT 1 FROM usergroup WHERE name = 'All');")
    if db.scalar(settings, "SELECT count(*) FROM user_oauth WHERE is_superuser") == "0":
        db.run(settings, "INSERT INTO user_oauth (email, hashed_password, is_active, is_superuser, is_verified, username) VALUES (:'e', 'double', true, true, true, :'u');",
               {"e": settings.get("FRACTAL_DEFAULT_ADMIN_EMAIL", "admin@fractal.xy"), "u": settings.get("FRACTAL_DEFAULT_ADMIN_USERNAME", "admin")})
        print("Created the first superuser.", flush=True)


PAUSE_FILE = ".double-pause-update-db-data"

QUESTIONS = [
    "Are the old and target versions consecutive?",
    "Is the target version {version}?",
    "Have you run `fractalctl set-db` with the target version?",
    "Have you made a backup of the database?",
    "Are you sure you want to proceed?",
]


def update_db_data():
    slug = "_".join(re.match(r"(\d+)\.(\d+)\.(\d+)", __VERSION__).groups())
    # Test hook (not in the real fractalctl): a pause before anything is read or written, so a test
    # can kill the step while it is in flight.
    if os.path.exists(PAUSE_FILE):
        with open(PAUSE_FILE) as f:
            seconds = int(f.read().strip() or "0")
        print(f"double: pausing {seconds} s before update-db-data", flush=True)
        import time
        time.sleep(seconds)
    print("WARNING: this command updates the data in the database for a new fractal-server version.", flush=True)
    print("It is meant to run once, right after `fractalctl set-db`, on a backed-up database.", flush=True)
    if not os.path.exists(".fractal_server.env"):
        sys.exit("Missing '.fractal_server.env' file in the current directory.")
    for question in QUESTIONS:
        answer = input(question.format(version=__VERSION__) + " (yes/no) ")
        if answer != "yes":
            sys.exit(f"Answer was '{answer}'; exit.")
    if slug != "2_17_0":
        print(f"Update-db module for version {slug} not found; exit.", flush=True)
        sys.exit(0)
    from fractal_server import settings as config
    settings = config.load_2_17()
    print(f"Now running data migration for {slug}.", flush=True)
    from fractal_server.data_migration_2_17_0 import fix_db
    fix_db(settings)


def run():
    parser = argparse.ArgumentParser(prog="fractalctl")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start")
    p_start.add_argument("--host", default="127.0.0.1")
    p_start.add_argument("-p", "--port", type=int, default=8000)
    p_start.add_argument("--reload", action="store_true")
    sub.add_parser("openapi")
    p_set_db = sub.add_parser("set-db")
    if not is_2_17():
        p_set_db.add_argument("--skip-init-data", action="store_true")
    sub.add_parser("update-db-data")
    args = parser.parse_args()
    if args.cmd == "start":
        start(args)
    elif args.cmd == "openapi":
        print(json.dumps({"openapi": "3.1.0", "info": {"title": "Fractal Server", "version": __VERSION__}}))
    elif args.cmd == "set-db":
        set_db(args)
    elif args.cmd == "update-db-data":
        update_db_data()


if __name__ == "__main__":
    run()
