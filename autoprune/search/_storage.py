"""The Optuna storage itself: opening it with heartbeats, and with one retry when another process creates its tables."""

from __future__ import annotations

import time
import warnings

import optuna

from .._sqlite import sqlite_path, tune_sqlite
from ..errors import ConfigError

__all__ = ["open_storage"]


def open_storage(url: str, *, heartbeat_s: int) -> optuna.storages.RDBStorage:
    """An RDB storage with a heartbeat, so trials of killed processes end FAIL instead of RUNNING."""
    tune_sqlite()
    database = sqlite_path(url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat: stable in practice
                return optuna.storages.RDBStorage(
                    url,
                    heartbeat_interval=heartbeat_s,
                    grace_period=3 * heartbeat_s,
                    engine_kwargs={"connect_args": {"timeout": 30}} if url.startswith("sqlite") else None,
                )
        except Exception as exc:  # sqlalchemy raises many types for a bad URL or an unreachable server
            # Another process (a worker, or a reader such as optuna-dashboard) created the tables at the
            # same moment: they exist now, so opening again succeeds.
            if type(exc).__name__ == "IntegrityError" and attempt < 2:
                time.sleep(0.5)
                continue
            reason = str(exc).splitlines()[0] if str(exc) else ""
            raise ConfigError(
                f"cannot open the Optuna storage {url!r}: {type(exc).__name__}: {reason}", key="search.storage"
            ) from exc
    raise AssertionError("unreachable: the last attempt returns or raises")
