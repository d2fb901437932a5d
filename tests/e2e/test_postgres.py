"""The small pipeline with the Optuna storage and the MLflow backend store on PostgreSQL.

CI starts Debian's PostgreSQL on 127.0.0.1 and sets ``AUTOPRUNE_TEST_POSTGRES`` to a URL whose role
may create databases (``.ci/run`` shows how); each test gets fresh databases and drops them after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from .test_reliability import COMMAND, PIPELINE, _check_consistent, _start

pytestmark = pytest.mark.slow

SERVER = os.environ.get("AUTOPRUNE_TEST_POSTGRES")


@pytest.fixture()
def databases() -> Iterator[tuple[str, str]]:
    if not SERVER:
        pytest.skip("set AUTOPRUNE_TEST_POSTGRES=postgresql://user:password@127.0.0.1:5432 (.ci/run does)")
    from sqlalchemy import create_engine, text

    names = [f"autoprune_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("mlflow", "optuna")]
    admin = create_engine(f"{SERVER.rstrip('/')}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield tuple(f"{SERVER.rstrip('/')}/{name}" for name in names)  # type: ignore[misc]
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _pipeline(root: Path, name: str, trials: int, mlflow_url: str, optuna_url: str) -> Path:
    text = PIPELINE.format(name=name, trials=trials, root=root)
    text = text.replace(f'tracking: {{uri: "sqlite:///{root}/store/mlflow.db"}}', f'tracking: {{uri: "{mlflow_url}"}}')
    text = text.replace("  heartbeat_s: 1\n", f'  heartbeat_s: 1\n  storage: "{optuna_url}"\n')
    path = root / f"{name}.yaml"
    path.write_text(text)
    return path


def test_pipeline_and_two_workers_on_postgresql(databases: tuple[str, str], tmp_path: Path, monkeypatch) -> None:
    import tests.e2e.test_reliability as reliability

    mlflow_url, optuna_url = databases
    pipeline = _pipeline(tmp_path, "pg", trials=6, mlflow_url=mlflow_url, optuna_url=optuna_url)
    workers = [_start(pipeline, "--resume", threads=1) for _ in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], [o[1] for o in outputs]
    # the same checks as for sqlite, read from PostgreSQL
    monkeypatch.setattr(
        reliability, "_study", lambda root, name: optuna.load_study(study_name=name, storage=optuna_url)
    )
    client = MlflowClient(mlflow_url)
    monkeypatch.setattr(
        reliability,
        "_children",
        lambda root, experiment: client.search_runs(
            [client.get_experiment_by_name(experiment).experiment_id], max_results=1000
        ),
    )
    _check_consistent(tmp_path, "pg", budget=6)
    versions = client.search_model_versions("name = 'pg'")
    assert versions and all(v.tags["pareto"] == "true" for v in versions)
    assert client.get_model_version_by_alias("pg", "champion").version in {v.version for v in versions}
    assert COMMAND  # the workers ran the installed console script
