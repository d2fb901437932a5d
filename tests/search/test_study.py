"""The study: opening its storage (a table-creation race is retried), trials of a dead process ended
failed whether it died after its first heartbeat or before it, and outcomes written in one place."""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from autoprune.errors import ConfigError
from autoprune.search import Objectives, Study, TrialRecord
from autoprune.search import TrialState as State
from autoprune.search._storage import open_storage

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
    study = Study(storage_url, "stale", objectives=Objectives(["accuracy"]), heartbeat_s=1).connect()
    study.open(resume=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Optuna: heartbeats are meant for optimize()
        never_beaten = study.optuna.ask()  # its process died before the first beat
        beaten = study.optuna.ask()
    study.record_heartbeat(beaten)  # its process died after one beat
    study.fail_stale_trials()
    assert [t.state for t in study.optuna.trials] == [TrialState.RUNNING] * 2  # still within the grace period
    time.sleep(4.5)  # past the grace period of 3 heartbeats (sqlite keeps whole seconds)
    study.fail_stale_trials()
    assert [t.state for t in study.optuna.trials] == [TrialState.FAIL] * 2
    assert never_beaten.number == 0 and beaten.number == 1


def test_the_constructor_stores_and_connect_opens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store' / 'optuna.db'}"
    study = Study(url, "lazy", objectives=Objectives(["accuracy"]))
    assert not (tmp_path / "store").exists()  # nothing touched until connect()
    with pytest.raises(Exception, match=r"Study.connect\(\) first"):
        _ = study.storage
    study.connect().open(resume=False)
    assert (tmp_path / "store" / "optuna.db").is_file() and study.name == "lazy"


def test_an_outcome_told_is_the_record_read_back(tmp_path: Path) -> None:
    study = Study(f"sqlite:///{tmp_path / 'optuna.db'}", "told", objectives=Objectives(["accuracy", "macs"]))
    study.connect().open(resume=False)
    distributions = {"ratio": optuna.distributions.FloatDistribution(0.0, 0.5)}
    trial = study.ask(distributions)
    record = TrialRecord(
        trial.number,
        State.COMPLETE,
        dict(trial.params),
        metrics={"val_accuracy": 0.9, "macs": 1000.0},
        epochs=[0.8, 0.9],
        kept={"conv": 4},
        constraints={"max_accuracy_drop": -0.01},
    )
    stored = study.tell(trial, record)
    assert stored == study.records()[0]
    assert (stored.metrics, stored.epochs, stored.kept, stored.constraints) == (
        record.metrics,
        record.epochs,
        record.kept,
        record.constraints,
    )
    assert study.optuna.trials[0].values == [0.9, 1000.0] and study.count(State.COMPLETE) == 1
    failed = study.ask(distributions)
    assert study.tell(failed, TrialRecord.failed(failed.number, failed.params, "boom")).error == "boom"
    assert study.count(State.FAILED) == 1


class IntegrityError(Exception):
    """Named like SQLAlchemy's: what creating the tables raises when another process just did it."""


def test_a_table_creation_race_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = optuna.storages.RDBStorage, []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("UNIQUE constraint failed: alembic_version.version_num")
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_s=5)
    assert isinstance(storage, real) and len(calls) == 2


def test_other_storage_errors_are_one_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot open the Optuna storage"):
        open_storage("postgresql://nobody@127.0.0.1:9/none", heartbeat_s=5)
