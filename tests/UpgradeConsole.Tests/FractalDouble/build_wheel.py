#!/usr/bin/env python3
"""Builds fractal_server-<version>-py3-none-any.whl from ./fractal_server with only the standard library.

    python3 build_wheel.py <version> <output dir>
"""
import base64, hashlib, os, sys, zipfile

version, out = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
dist_info = f"fractal_server-{version}.dist-info"
files = {}
for name in sorted(os.listdir(os.path.join(here, "fractal_server"))):
    if name.endswith(".py"):
        with open(os.path.join(here, "fractal_server", name), "rb") as f:
            data = f.read()
        if name == "__init__.py":
            data = data.replace(b'__VERSION__ = "0.0.0"', f'__VERSION__ = "{version}"'.encode())
        files[f"fractal_server/{name}"] = data
files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: fractal-server\nVersion: {version}\nSummary: Test double of fractal-server\nRequires-Python: >=3.9\n".encode()
files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: upgradeconsole-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
files[f"{dist_info}/entry_points.txt"] = b"[console_scripts]\nfractalctl = fractal_server.__main__:run\n"

def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

record = "".join(f"{path},{digest(data)},{len(data)}\n" for path, data in files.items()) + f"{dist_info}/RECORD,,\n"
files[f"{dist_info}/RECORD"] = record.encode()
os.makedirs(out, exist_ok=True)
wheel = os.path.join(out, f"fractal_server-{version}-py3-none-any.whl")
with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
    for path, data in files.items():
        z.writestr(path, data)
print(wheel)
