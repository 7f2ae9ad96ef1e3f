"""fractalctl of the test double: argparse subcommands, exit codes as in fractal-2.17.md §5."""
import argparse
import json
import os
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


def run():
    parser = argparse.ArgumentParser(prog="fractalctl")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start")
    p_start.add_argument("--host", default="127.0.0.1")
    p_start.add_argument("-p", "--port", type=int, default=8000)
    p_start.add_argument("--reload", action="store_true")
    sub.add_parser("openapi")
    args = parser.parse_args()
    if args.cmd == "start":
        start(args)
    elif args.cmd == "openapi":
        print(json.dumps({"openapi": "3.1.0", "info": {"title": "Fractal Server", "version": __VERSION__}}))


if __name__ == "__main__":
    run()
