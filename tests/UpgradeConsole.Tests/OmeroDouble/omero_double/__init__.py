"""Test double of omero-py's `omero` command for the Omero host double (see ../README.md)."""
__VERSION__ = "0.0.0"
