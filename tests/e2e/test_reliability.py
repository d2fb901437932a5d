"""Kill and resume, Ctrl-C and stop signals, and two workers on one study: real processes, real stores."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from ..helpers import free_port

pytestmark = pytest.mark.slow

PIPELINE = """\
name: {name}
data: {{source: digits, batch_size: 64}}
model: {{arch: cnn, widths: [64, 128], train: {{epochs: 3, lr: 0.05}}}}
search:
  space:
    pruning: {{ratio: {{low: 0.0, high: 0.8, step: 0.1}}, importance: [l1, l2]}}
    finetune: {{lr: {{low: 0.005, high: 0.05, log: true}}, epochs: 40}}  # ~3 s a trial: long enough to kill one
  sampler: random
  trials: {trials}
  heartbeat_s: 1
objectives: {{accuracy: max, macs: min}}
latency: {{repeats: 5, warmup: 1}}
tracking: {{uri: "sqlite:///{root}/store/mlflow.db"}}
finalize: {{epochs: 1, onnx: false}}
"""
COMMAND = [os.path.join(os.path.dirname(sys.executable), "autoprune"), "run"]


def _pipeline(root: Path, name: str, trials: int) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(PIPELINE.format(name=name, trials=trials, root=root))
    return path


def _start(pipeline: Path, *extra: str, threads: int | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "150"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # two workers on two cores: one thread each
    return subprocess.Popen(
        [*COMMAND, str(pipeline), *extra],
        cwd=pipeline.parent,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _study(root: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root}/store/optuna.db")


def _tables_ready(database: Path) -> bool:
    """True once the worker has created Optuna's tables (reading earlier would race its creation)."""
    if not database.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as connection:
            return bool(connection.execute("SELECT COUNT(*) FROM alembic_version").fetchone()[0])
    except sqlite3.Error:
        return False


def _wait_mid_trial(
    root: Path, name: str, process: subprocess.Popen[str], completed: int, timeout: float = 240
) -> list:
    """Wait until ``completed`` trials are done and another one has been running for a while."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        trials = []
        if _tables_ready(root / "store" / "optuna.db"):
            with contextlib.suppress(KeyError):  # the study does not exist yet
                trials = _study(root, name).get_trials(deepcopy=False)
        done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
        if len(done) >= completed and running and time.time() - running[0].datetime_start.timestamp() > 0.5:
            return done
        time.sleep(0.2)
    raise AssertionError("the search never reached the middle of a trial")


def _children(root: Path, experiment: str) -> list:
    client = MlflowClient(f"sqlite:///{root}/store/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    return runs


def _check_consistent(root: Path, name: str, budget: int) -> None:
    study = _study(root, name)
    complete = {t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(complete) == budget  # the final count of finished trials equals the budget
    runs = _children(root, name)
    parents = [r for r in runs if r.data.tags.get("autoprune.kind") == "search"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    numbers = [int(r.data.tags["autoprune.trial"]) for r in children]
    assert len(numbers) == len(set(numbers))  # no Optuna trial has two child runs
    assert complete <= set(numbers)
    assert not [r for r in children if r.info.status == "RUNNING"]
    front = {int(r.data.tags["autoprune.trial"]) for r in children if r.data.tags.get("pareto") == "true"}
    assert front == {t.number for t in study.best_trials}


def test_sigkill_mid_trial_then_resume_loses_nothing(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, "killed", trials=6)
    process = _start(pipeline)
    done = _wait_mid_trial(tmp_path, "killed", process, completed=2)
    before = {t.number: t.values for t in done}
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    killed = [t.number for t in _study(tmp_path, "killed").trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len(killed) == 1
    resumed = subprocess.run(
        [*COMMAND, str(pipeline), "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    after = {t.number: t for t in _study(tmp_path, "killed").trials}
    assert all(after[n].values == values for n, values in before.items())  # no finished trial is lost
    assert after[killed[0]].state == optuna.trial.TrialState.FAIL  # the heartbeat failed the killed trial
    run = next(r for r in _children(tmp_path, "killed") if r.data.tags.get("autoprune.trial") == str(killed[0]))
    assert run.info.status == "FAILED" and "process stopped" in run.data.tags["autoprune.error"]
    _check_consistent(tmp_path, "killed", budget=6)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_marks_the_trial_prints_how_to_resume_and_exits_128_plus_signal(
    tmp_path: Path, stop: signal.Signals
) -> None:
    pipeline = _pipeline(tmp_path, "interrupted", trials=5)
    process = _start(pipeline)
    _wait_mid_trial(tmp_path, "interrupted", process, completed=1)
    os.killpg(process.pid, stop)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + stop
    assert "interrupted: finished trials are kept. Continue with" in err and "--resume" in err
    assert "Traceback" not in err and "failed with parameters" not in err  # autoprune's message alone
    trials = _study(tmp_path, "interrupted").trials
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    runs = _children(tmp_path, "interrupted")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert [r.info.status for r in runs if r.data.tags.get("autoprune.kind") == "search"] == ["KILLED"]
    resumed = subprocess.run(
        [*COMMAND, str(pipeline), "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    _check_consistent(tmp_path, "interrupted", budget=5)


def test_sigterm_while_the_front_is_finalized_closes_the_search_as_killed(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, "finalizing", trials=2)
    process = _start(pipeline, "--set", "finalize.epochs=200")  # the finalize runs for minutes
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # both trials done: the search is finalizing its front
        assert process.poll() is None, process.communicate()
        with contextlib.suppress(KeyError, sqlite3.Error):
            trials = (
                _study(tmp_path, "finalizing").get_trials(deepcopy=False)
                if _tables_ready(tmp_path / "store" / "optuna.db")
                else []
            )
            if sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 2:
                break
        time.sleep(0.2)
    time.sleep(3)
    os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "interrupted: finished trials are kept" in err
    parents = [r for r in _children(tmp_path, "finalizing") if r.data.tags.get("autoprune.kind") == "search"]
    assert [r.info.status for r in parents] == ["KILLED"]


def test_two_workers_share_one_study(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, "shared", trials=8)
    workers = [_start(pipeline, "--resume", threads=1) for _ in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], [o[1] for o in outputs]
    study = _study(tmp_path, "shared")
    assert len(study.trials) >= 8
    _check_consistent(tmp_path, "shared", budget=8)
    # both workers ran trials
    owners = {
        r.data.tags.get("autoprune.worker") for r in _children(tmp_path, "shared") if r.data.tags.get("autoprune.trial")
    }
    assert len(owners) == 2


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_to_ui_stops_its_mlflow_server(tmp_path: Path, stop: signal.Signals) -> None:
    port, uri = free_port(), f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(uri).search_experiments()  # an (empty) store to serve
    command = [COMMAND[0], "ui", "--tracking-uri", uri, "--port", str(port)]
    process = subprocess.Popen(command, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the MLflow server never answered")
    process.send_signal(stop)  # to autoprune alone, as a closed terminal or a scheduler sends it
    process.communicate(timeout=60)
    assert process.returncode == 0  # stopping it is how `ui` ends, as with Ctrl-C
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing serves on the port any more
