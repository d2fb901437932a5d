"""Stores that move: a sqlite store whose folder was moved or copied still names its old folder.

MLflow records every artifact location as an absolute ``file://`` path (it makes relative ones
absolute when an experiment is created): the experiments', the runs', the logged models' and the
model versions'. A store folder moved elsewhere (or copied, to share it) keeps pointing at the old
one, so the UI shows the old folder's images, loading by alias fails and a resumed search writes
into the old folder. autoprune's experiments keep their artifacts in ``artifacts/`` beside the
database, so a moved store is recognised by that folder's recorded path; `moved_from` tells, and
`relocate` rewrites the recorded paths to the new folder, once, in one transaction (``autoprune
relocate``). Every other command refuses a moved store with that hint instead of reading or
writing the old folder.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import ConfigError

__all__ = ["check_in_place", "moved_from", "relocate"]

# (table, column) holding artifact locations in MLflow 3's schema; columns a store lacks are skipped
_LOCATIONS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def _root(database: Path) -> str:
    """The artifact root autoprune gives the experiments of ``database``."""
    return (database.parent / "artifacts").resolve().as_uri()


def moved_from(database: Path) -> str | None:
    """The artifact root the store at ``database`` was created with when it is not the one beside
    it now (the folder was moved or copied); None when it is, or the store has no such experiment."""
    if not database.is_file():
        return None
    here = _root(database)
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            rows = connection.execute("SELECT artifact_location FROM experiments").fetchall()
    except sqlite3.Error:  # not an MLflow store yet, or not readable: the client will say so
        return None
    roots = {str(location) for (location,) in rows if str(location).endswith("/artifacts")}
    others = sorted(root for root in roots if root != here and root.startswith("file://"))
    return others[0] if others else None


def check_in_place(database: Path) -> None:
    """Refuse a store whose recorded artifact paths name another folder (see the module docstring).

    Raises:
        ConfigError: The store was moved or copied; the message says how to point it here.
    """
    old = moved_from(database)
    if old is None:
        return
    raise ConfigError(
        f"the MLflow store {database} was moved or copied from {old.removeprefix('file://').rsplit('/', 1)[0]}: its "
        "artifact paths still name that folder; run 'autoprune relocate' with the same pipeline (or --tracking-uri) "
        "once to point them here",
        key="tracking.uri",
    )


def relocate(database: Path) -> tuple[str, str, int] | None:
    """Rewrite the artifact locations recorded in ``database`` from the folder it was created in to
    the one beside it now. Returns the old root, the new one and how many values changed; None when
    the store was not moved.

    Raises:
        sqlite3.Error: The store cannot be written (the transaction is then rolled back).
    """
    old = moved_from(database)
    if old is None:
        return None
    new = _root(database)
    changed = 0
    with sqlite3.connect(database) as connection:  # one transaction: all paths move, or none
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, column in _LOCATIONS:
            if table not in tables:
                continue
            columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                continue
            cursor = connection.execute(  # the root itself, or a path under it (not a sibling sharing its prefix)
                f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                (new, len(old) + 1, old, len(old) + 1, old + "/"),
            )
            changed += cursor.rowcount
    return old, new, changed
