"""A real SMTP server for the notification tests: Debian's aiosmtpd on 127.0.0.1, STARTTLS required, AUTH
LOGIN/PLAIN with one user; every message accepted is written to --dir as <n>.eml (written, then renamed)."""
import argparse, asyncio, itertools, os, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--dir", required=True)
parser.add_argument("--cert", required=True)
parser.add_argument("--key", required=True)
parser.add_argument("--user", required=True)
parser.add_argument("--password", required=True)
args = parser.parse_args()
counter = itertools.count(1)


class Sink:
    async def handle_DATA(self, server, session, envelope):
        n = next(counter)
        path = os.path.join(args.dir, f"{n}.eml")
        with open(path + ".part", "wb") as f:
            f.write(b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(b"X-Authenticated-As: " + (session.authenticated and args.user.encode() or b"-") + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".part", path)
        return "250 2.0.0 queued as sink-%d" % n


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == args.user and auth_data.password.decode() == args.password
    return AuthResult(success=ok)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(args.cert, args.key)
controller = Controller(Sink(), hostname="127.0.0.1", port=args.port, tls_context=context, require_starttls=True,
                        authenticator=authenticate, auth_required=True)
controller.start()
print("ready", flush=True)
try:
    sys.stdin.read()  # until the test closes our stdin (or dies)
finally:
    controller.stop()
