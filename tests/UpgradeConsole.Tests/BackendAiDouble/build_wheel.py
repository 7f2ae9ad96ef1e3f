#!/usr/bin/env python3
"""Builds the stand-in Backend.AI wheels with only the standard library:

    python3 build_wheel.py <output dir> <version> [<version> ...]

One wheel per component and version: backend.ai-manager, -agent, -storage-proxy, -webserver,
-app-proxy-coordinator, -app-proxy-worker. Each installs ai/backend/<component>/__init__.py with
__version__ (PEP 420 namespace packages ai and ai.backend, as the real ones). The manager's wheel also
carries the stand-in `backend.ai` and `alembic` commands (cli.py) and the revision history dumps of the
releases before it (ai/backend/manager/models/alembic/revision_history/<version>.json).
"""
import base64, hashlib, json, os, sys, zipfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from revisions import REVISIONS, RELEASES, key, head_of  # noqa: E402

COMPONENTS = {
    "manager": "manager", "agent": "agent", "storage-proxy": "storage", "webserver": "web",
    "app-proxy-coordinator": "appproxy_coordinator", "app-proxy-worker": "appproxy_worker",
}


def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build(component, version, out):
    project = "backend.ai-" + component
    module = COMPONENTS[component]
    dist = project.replace("-", "_").replace(".", "_")
    dist_info = f"{dist}-{version}.dist-info"
    files = {f"ai/backend/{module}/__init__.py": f'__version__ = "{version}"\n'.encode()}
    if component == "manager":
        with open(os.path.join(here, "cli.py"), "rb") as f:
            files["ai/backend/manager/cli.py"] = f.read()
        with open(os.path.join(here, "revisions.py"), "rb") as f:
            files["ai/backend/manager/revisions.py"] = f.read()
        for release in RELEASES:
            if key(release) < key(version):
                dump = {"manager_version": release, "revisions": [
                    {"revision": r, "down_revision": d, "doc": doc} for (r, d, since, doc) in REVISIONS if key(since) <= key(release)]}
                files[f"ai/backend/manager/models/alembic/revision_history/{release}.json"] = json.dumps(dump, indent=2).encode()
        files[f"{dist_info}/entry_points.txt"] = b"[console_scripts]\nbackend.ai = ai.backend.manager.cli:main\nalembic = ai.backend.manager.cli:alembic_main\n"
    files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\nSummary: Test double of {project}\n".encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: upgradeconsole-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(f"{name},{digest(data)},{len(data)}\n" for name, data in files.items()) + f"{dist_info}/RECORD,,\n"
    files[f"{dist_info}/RECORD"] = record.encode()
    path = os.path.join(out, f"{dist}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)


if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for v in sys.argv[2:]:
        for c in COMPONENTS:
            build(c, v, out)
