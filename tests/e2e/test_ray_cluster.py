"""A real Ray cluster on loopback: ``ray job submit`` runs the quickstart on it, and only that cluster is stopped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ..helpers import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the process group."""
    listing = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True).stdout
    rows = [line.split() for line in listing.splitlines()]
    return any(row[0] == str(pgid) and not row[1].startswith("Z") for row in rows if len(row) == 2)


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, str]]:
    if not (BIN / "ray").exists():
        pytest.skip("ray is not installed")
    temp = tempfile.mkdtemp(prefix="apray", dir="/tmp")  # Ray's socket paths must stay short
    env = {
        **os.environ,
        "RAY_TEMP_DIR": temp,
        "RAY_PORT": str(free_port()),
        "RAY_DASHBOARD_PORT": str(free_port()),
        "RAY_NUM_CPUS": "2",
        "VENV": str(BIN.parent),
    }
    script = str(ROOT / "scripts" / "ray-cluster.sh")
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    pgid = int(Path(temp, "head.pid").read_text())
    try:
        yield {**env, "RAY_ADDRESS": f"http://127.0.0.1:{env['RAY_DASHBOARD_PORT']}", "PGID": str(pgid)}
    finally:
        stopped = subprocess.run([script, "stop"], env=env, capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert not _group_alive(pgid)  # every process of the cluster it started is gone
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_job_submit_runs_the_quickstart_on_the_cluster(cluster: dict[str, str], tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    command = [
        str(BIN / "ray"),
        "job",
        "submit",
        "--address",
        cluster["RAY_ADDRESS"],
        "--submission-id",
        "quickstart-test",
        "--",
        "autoprune",
        "run",
        str(ROOT / "pipelines" / "quickstart_digits.yaml"),
        "--backend",
        "ray",
        "--set",
        f"tracking.uri=sqlite:///{db}",
        "--set",
        "search.trials=4",
        "--set",
        "ray.max_concurrent_trials=2",
        "--set",
        "finalize.epochs=1",
    ]
    submitted = subprocess.run(command, env=cluster, capture_output=True, text=True, timeout=600)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "Pareto front of quickstart-digits" in submitted.stdout

    status = subprocess.run(
        [str(BIN / "ray"), "job", "status", "--address", cluster["RAY_ADDRESS"], "quickstart-test"],
        env=cluster,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "succeeded" in (status.stdout + status.stderr).lower()
    actors = subprocess.run(
        [
            str(BIN / "ray"),
            "list",
            "actors",
            "--address",
            cluster["RAY_ADDRESS"],
            "--format",
            "json",
            "--limit",
            "1000",
        ],
        env=cluster,
        capture_output=True,
        text=True,
        timeout=60,
    )
    trials = [a for a in json.loads(actors.stdout) if a["class_name"] == "ImplicitFunc"]
    assert trials  # the trials ran as Tune actors of this cluster, not on a Ray the job started itself

    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("quickstart-digits").experiment_id], max_results=100)
    parent = next(r for r in runs if r.data.tags.get("autoprune.kind") == "search")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and len(children) == 4
    front = [c for c in children if c.data.tags["pareto"] == "true"]
    assert front and all("front.test_accuracy" in c.data.metrics for c in front)
    assert client.get_model_version_by_alias("quickstart-digits", "champion").run_id in {c.info.run_id for c in front}


def test_a_killed_ray_driver_loses_nothing_and_resume_finishes_the_budget(
    cluster: dict[str, str], tmp_path: Path
) -> None:
    import signal
    import textwrap
    import time

    import optuna

    from .conftest import PIPELINE

    db = tmp_path / "store" / "mlflow.db"
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(db=db)))
    gcs = f"127.0.0.1:{cluster['RAY_PORT']}"
    command = [
        str(BIN / "autoprune"),
        "run",
        str(pipeline),
        "--backend",
        "ray",
        "--address",
        gcs,
        "--set",
        "search.trials=8",
        "--set",
        "ray.max_concurrent_trials=2",
        "--set",
        "search.heartbeat_s=2",
        "--set",
        "finalize.epochs=1",
        "--set",
        "search.space.finetune.epochs=30",  # trials of a few seconds: long enough to be killed in one
    ]
    env = {key: value for key, value in cluster.items() if key != "RAY_ADDRESS"}
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 - closed below
    driver = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    storage = f"sqlite:///{tmp_path / 'store' / 'optuna.db'}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill it mid-search: some trials done, one running
        time.sleep(0.5)
        if driver.poll() is not None:
            break
        if "preparing the dense model" not in (tmp_path / "driver.log").read_text():
            continue  # reading the storage while the driver creates its tables would break the driver's start
        try:
            trials = optuna.load_study(study_name="e2e-digits", storage=storage).trials
        except Exception:  # the tables or the study are being created
            continue
        states = [t.state for t in trials]
        if states.count(optuna.trial.TrialState.COMPLETE) >= 2 and optuna.trial.TrialState.RUNNING in states:
            break
    log.close()
    assert driver.poll() is None, (
        "the search ended before it could be killed:\n" + (tmp_path / "driver.log").read_text()[-3000:]
    )
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)

    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    study = optuna.load_study(study_name="e2e-digits", storage=storage)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 8  # the budget exactly, no finished trial lost
    assert optuna.trial.TrialState.FAIL in states and optuna.trial.TrialState.RUNNING not in states  # the killed ones
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("e2e-digits").experiment_id], max_results=1000)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    numbers = [int(r.data.tags["autoprune.trial"]) for r in children]
    assert len(numbers) == len(set(numbers))  # no trial has two child runs
    assert all(r.info.status != "RUNNING" for r in runs)
    assert sum(r.info.status == "FINISHED" for r in children) == 8
