#!/usr/bin/env python3
"""Builds a stand-in wheel with only the standard library:

    python3 build_wheel.py omero-py <version> <output dir>            (package omero_double, command `omero`)
    python3 build_wheel.py omero-certificates <version> <output dir>  (package omero_certificates)
"""
import base64, hashlib, os, sys, zipfile

project, version, out = sys.argv[1], sys.argv[2], sys.argv[3]
here = os.path.dirname(os.path.abspath(__file__))
package = {"omero-py": "omero_double", "omero-certificates": "omero_certificates"}[project]
dist = project.replace("-", "_")
dist_info = f"{dist}-{version}.dist-info"
files = {}
for name in sorted(os.listdir(os.path.join(here, package))):
    if name.endswith(".py"):
        with open(os.path.join(here, package, name), "rb") as f:
            data = f.read()
        if name == "__init__.py":
            data = data.replace(b'__VERSION__ = "0.0.0"', f'__VERSION__ = "{version}"'.encode())
        files[f"{package}/{name}"] = data
files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\nSummary: Test double of {project}\n".encode()
files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: upgradeconsole-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
if project == "omero-py":
    files[f"{dist_info}/entry_points.txt"] = b"[console_scripts]\nomero = omero_double.cli:main\n"


def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


record = "".join(f"{path},{digest(data)},{len(data)}\n" for path, data in files.items()) + f"{dist_info}/RECORD,,\n"
files[f"{dist_info}/RECORD"] = record.encode()
os.makedirs(out, exist_ok=True)
wheel = os.path.join(out, f"{dist}-{version}-py3-none-any.whl")
with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
    for path, data in files.items():
        z.writestr(path, data)
print(wheel)
