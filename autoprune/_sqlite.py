"""SQLite settings for the local stores (Optuna's and MLflow's), applied to every SQLAlchemy engine
this process opens on a sqlite file.

WAL journaling with ``synchronous=NORMAL`` keeps every committed transaction across a crash of the
process (SIGKILL included; only an operating-system crash can lose the last commits) and cuts the
cost of a commit by about a third here (49 → 32 ms per Optuna trial of 7 parameters). WAL also lets
readers (the MLflow UI, a second worker) read while a search writes. ``busy_timeout`` makes concurrent
writers wait for the lock instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["absolute_sqlite_uri", "check_sqlite_file", "sqlite_path", "tune_sqlite"]

_HEADER = b"SQLite format 3\x00"

_installed = False


def _on_connect(connection: Any, record: Any) -> None:
    import sqlite3

    if not isinstance(connection, sqlite3.Connection):
        return
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def absolute_sqlite_uri(uri: str) -> str:
    """``uri`` with a relative sqlite file made absolute against the working directory now (other URIs
    as they are). MLflow keeps one store per URI string for the process: a relative one would keep
    pointing into the folder it was first opened from after a change of directory."""
    path = sqlite_path(uri)
    if path is None or path.is_absolute() or str(path) == ":memory:":
        return uri
    query = uri.partition("?")[2]
    return f"sqlite:///{path.resolve()}" + (f"?{query}" if query else "")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory; a ``?query`` of
    connection options dropped), else None."""
    return Path(uri.removeprefix("sqlite:///").partition("?")[0]) if uri.startswith("sqlite:///") else None


def tune_sqlite() -> None:
    """Install the settings for every sqlite connection opened from now on (idempotent)."""
    global _installed
    if _installed:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _on_connect)
    _installed = True


def check_sqlite_file(uri: str) -> str | None:
    """Why the file of a ``sqlite:///`` URI cannot hold a store (None when it can, or the URI is no
    sqlite one): a folder, a file that is not a SQLite database, a folder that cannot be written.
    Reads only, so it can run before anything is created."""
    database = sqlite_path(uri)
    if database is None:
        return None
    if database.is_dir():
        return f"{database} is a folder, not a database file"
    if database.is_file():
        try:
            with database.open("rb") as handle:
                header = handle.read(len(_HEADER))
        except OSError as exc:
            return f"cannot read {database}: {exc.strerror or exc}"
        if header and header != _HEADER:
            return f"{database} is not a SQLite database (another file of that name?)"
        return None
    existing = next((p for p in (database.parent, *database.parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{existing} is a file, so {database} cannot be created"
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} cannot be written, so {database} cannot be created there"
    return None
