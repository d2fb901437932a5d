"""A lock shared by every worker of one study, held where two workers must not act at once
(choosing a study name, creating the search's MLflow parent run, finalizing the front).

It lives where the study lives: a file lock beside a sqlite storage, in a hidden folder
``.<database name>.locks/`` (sqlite files are local, so its workers share a machine), an
advisory lock in PostgreSQL (``pg_advisory_lock``) or MySQL (``GET_LOCK``) for shared servers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._sqlite import sqlite_path
from ..errors import TrackingError

__all__ = ["storage_lock"]

log = logging.getLogger("autoprune")


def _key(name: str) -> int:
    """A signed 64-bit key for advisory locks."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _file_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _database_lock(engine: Any, name: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    from sqlalchemy import text

    dialect = engine.dialect.name
    with engine.connect() as connection:
        if dialect == "postgresql":
            got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _key(name)}).scalar()
            if not got:
                if on_wait is not None:
                    on_wait()
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _key(name)})
            release = text("SELECT pg_advisory_unlock(:key)")
            params: dict[str, Any] = {"key": _key(name)}
        else:  # mysql / mariadb: GET_LOCK answers 1 when it got the lock
            got = connection.execute(text("SELECT GET_LOCK(:name, 3600)"), {"name": name[:64]}).scalar()
            if got != 1:
                raise TrackingError(f"could not take the study lock {name!r} within an hour")
            release, params = text("SELECT RELEASE_LOCK(:name)"), {"name": name[:64]}
        try:
            yield
        finally:
            connection.execute(release, params)


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


def storage_lock(
    url: str, engine: Any, name: str, on_wait: Callable[[], None] | None = None
) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock called ``name`` among all processes using the Optuna storage at ``url``;
    ``on_wait`` is called once if another process holds it (then this one waits)."""
    database = sqlite_path(url)
    if database is not None:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        # one hidden folder per database, so the store's folder shows only what a user reads
        return _file_lock(database.parent / f".{database.name}.locks" / f"{digest}.lock", on_wait)
    if engine is None and url.split(":", 1)[0].split("+", maxsplit=1)[0] in ("postgresql", "mysql", "mariadb"):
        from sqlalchemy import create_engine

        engine = create_engine(url, poolclass=_null_pool())  # before Optuna's storage exists
    if engine is not None and engine.dialect.name in ("postgresql", "mysql", "mariadb"):
        return _database_lock(engine, name, on_wait)
    log.debug("no cross-process lock for %s; workers of one study should not start at the same moment", url)
    return contextlib.nullcontext()
