"""Trials of a dead process end FAIL, whether it died after its first heartbeat or before it."""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState

from autoprune.search import Objectives
from autoprune.search.backends import OptunaBackend

POSTGRES = os.environ.get("AUTOPRUNE_TEST_POSTGRES")  # .ci/run sets it (see tests/e2e/test_postgres.py)


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'optuna.db'}"
        return
    if not POSTGRES:
        pytest.skip("set AUTOPRUNE_TEST_POSTGRES=postgresql://user:password@127.0.0.1:5432 (.ci/run does)")
    from sqlalchemy import create_engine, text

    name = f"autoprune_stale_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{POSTGRES.rstrip('/')}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{POSTGRES.rstrip('/')}/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_running_trials_without_a_live_process_are_failed_after_the_grace_period(storage_url: str) -> None:
    backend = OptunaBackend(storage_url, "stale", objectives=Objectives(["accuracy"]), heartbeat_s=1)
    backend.open(resume=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Optuna: heartbeats are meant for optimize()
        never_beaten = backend.study.ask()  # its process died before the first beat
        beaten = backend.study.ask()
    backend.storage.record_heartbeat(beaten._trial_id)  # its process died after one beat
    backend.fail_stale_trials()
    assert [t.state for t in backend.study.trials] == [TrialState.RUNNING] * 2  # still within the grace period
    time.sleep(4.5)  # past the grace period of 3 heartbeats (sqlite keeps whole seconds)
    backend.fail_stale_trials()
    assert [t.state for t in backend.study.trials] == [TrialState.FAIL] * 2
    assert never_beaten.number == 0 and beaten.number == 1
