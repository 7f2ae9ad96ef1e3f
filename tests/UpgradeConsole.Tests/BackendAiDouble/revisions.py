"""The double's stand-in alembic revisions of the manager's database: (revision, down_revision, the release
that brought it, doc). Stand-ins, not Backend.AI's real revision ids; the shape (a linear chain, ids of 12 hex
digits as alembic makes them, the head of a release is its newest revision) is alembic's."""

REVISIONS = [
    ("0a1b2c3d4e5f", None, "23.03.0", "initial schema"),
    ("1b2c3d4e5f60", "0a1b2c3d4e5f", "23.09.0", "add kernels.cluster_hostname"),
    ("2c3d4e5f6071", "1b2c3d4e5f60", "23.09.9", "add sessions table"),
    ("3d4e5f607182", "2c3d4e5f6071", "23.09.10", "index kernels.status"),
    ("4e5f60718293", "3d4e5f607182", "24.03.0", "add endpoints table"),
    ("5f60718293a4", "4e5f60718293", "24.03.1", "add vfolder permissions"),
]

RELEASES = ["23.03.0", "23.09.0", "23.09.9", "23.09.10", "24.03.0", "24.03.1"]


def key(version):
    return tuple(int(p) for p in version.split("."))


def head_of(version):
    """The newest revision a manager of this version knows."""
    known = [r for (r, d, since, doc) in REVISIONS if key(since) <= key(version)]
    return known[-1] if known else None
