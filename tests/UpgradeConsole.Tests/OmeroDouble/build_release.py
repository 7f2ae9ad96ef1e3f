#!/usr/bin/env python3
"""Builds a release zip in OMERO.server's layout:

    python3 build_release.py <version> <schema, e.g. OMERO5.4__0> <output dir> [--pg-prereq 90300]

OMERO.server-<version>-ice36/ holding bin/omero, etc/omero.properties (omero.version, omero.db.version,
omero.db.patch), etc/grid/templates.xml, lib/scripts/omero/... and, when the double has them,
sql/psql/<schema>/<previous>-precheck.sql and <previous>.sql.
"""
import os, sys, zipfile

version, schema, out = sys.argv[1], sys.argv[2], sys.argv[3]
prereq = sys.argv[sys.argv.index("--pg-prereq") + 1] if "--pg-prereq" in sys.argv else "90300"
here = os.path.dirname(os.path.abspath(__file__))
top = f"OMERO.server-{version}-ice36"
db_version, db_patch = schema.split("__")
files = {
    "bin/omero": "#!/bin/sh\n# As in the release: the server tree's launcher hands over to omero-py's command.\nexport OMERODIR=\"$(cd \"$(dirname \"$0\")/..\" && pwd)\"\nexec omero \"$@\"\n",
    "etc/omero.properties": f"omero.version={version}\nomero.db.version={db_version}\nomero.db.patch={db_patch}\nomero.data.dir=/OMERO\n",
    "etc/grid/templates.xml": "<icegrid><!-- templates of the release --></icegrid>\n",
    "lib/scripts/omero/export_scripts/Batch_Image_Export.py": f"# Batch_Image_Export of OMERO.server {version}\n",
    "lib/scripts/omero/util_scripts/Combine_Images.py": f"# Combine_Images of OMERO.server {version}\n",
}
sql_dir = os.path.join(here, "sql", schema)
if os.path.isdir(sql_dir):
    with open(os.path.join(here, "sql", "checks.sql.in")) as f:
        checks = f.read()
    for name in sorted(os.listdir(sql_dir)):
        previous = name.replace("-precheck.sql", "").replace(".sql", "")
        from_version, from_patch = previous.split("__")
        with open(os.path.join(sql_dir, name)) as f:
            text = f.read().replace("@CHECKS@", checks)
        text = (text.replace("@FROM_VERSION@", from_version).replace("@FROM_PATCH@", from_patch)
                .replace("@TO_VERSION@", db_version).replace("@TO_PATCH@", db_patch)
                .replace("@TO@", schema).replace("@PG_PREREQ@", prereq))
        files[f"sql/psql/{schema}/{name}"] = text
os.makedirs(out, exist_ok=True)
path = os.path.join(out, top + ".zip")
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    for name, text in files.items():
        info = zipfile.ZipInfo(f"{top}/{name}")
        info.external_attr = (0o755 if name.startswith("bin/") else 0o644) << 16
        z.writestr(info, text)
print(path)
