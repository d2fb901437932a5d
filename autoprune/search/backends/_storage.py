"""The Optuna storage itself: opening it (with heartbeats), and the trials a dead process left RUNNING."""

from __future__ import annotations

import datetime
import time
import warnings

import optuna

from ..._sqlite import sqlite_path, tune_sqlite
from ...errors import ConfigError

__all__ = ["never_beaten", "open_storage"]


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


def never_beaten(storage: optuna.storages.RDBStorage, study_name: str, grace_s: float) -> list[int]:
    """RUNNING trials of the study with no heartbeat row that started over ``grace_s`` ago.

    A trial is created (RUNNING) before its process records the first heartbeat, after the sampler's
    work; a process killed in between leaves such a trial, and Optuna's ``fail_stale_trials`` only
    looks at trials with a heartbeat. Its public API cannot see heartbeats, so this reads its
    schema's two tables.
    """
    from sqlalchemy import DateTime, Integer, text

    query = text(
        "SELECT t.trial_id, t.datetime_start FROM trials t WHERE t.study_id = :study AND t.state = 'RUNNING' "
        "AND NOT EXISTS (SELECT 1 FROM trial_heartbeats h WHERE h.trial_id = t.trial_id)"
    ).columns(trial_id=Integer, datetime_start=DateTime)
    with storage.engine.connect() as connection:
        rows = connection.execute(query, {"study": storage.get_study_id_from_name(study_name)}).all()
    now = datetime.datetime.now()  # Optuna stores datetime_start as naive local time
    return [trial_id for trial_id, start in rows if start is not None and (now - start).total_seconds() > grace_s]
