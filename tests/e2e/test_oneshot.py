"""``search.strategy: oneshot`` end to end on the digits: a supernet, candidates scored in-process and
logged on the search's run, the front's best as trials that are finalized, tagged and registered;
resumed runs add nothing, and a run killed while it scores goes on from the candidates it scored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from ..helpers import run_cli

PIPELINE = """\
name: oneshot-digits
data: {{source: digits, batch_size: 64}}
model: {{arch: cnn, widths: [8, 16], train: {{epochs: 4, lr: 0.05}}}}
search:
  strategy: oneshot
  space:
    pruning: {{ratio: {{low: 0.0, high: 0.8, step: 0.1}}}}
    finetune: {{lr: 0.02, epochs: 1}}
  sampler: nsga2
oneshot:
  {{supernet_epochs: {epochs}, candidates: {candidates}, calibration_batches: 4, population_size: 12, members: 3}}
objectives: {{accuracy: max, macs: min}}
latency: {{repeats: 5, warmup: 1}}
tracking: {{uri: "sqlite:///{root}/store/mlflow.db"}}
finalize: {{epochs: 1}}
"""


def _pipeline(root: Path, *, candidates: int = 60, epochs: int = 1) -> Path:
    path = root / "oneshot.yaml"
    path.write_text(PIPELINE.format(root=root, candidates=candidates, epochs=epochs))
    return path


def _runs(root: Path) -> tuple[MlflowClient, object, list]:
    client = MlflowClient(f"sqlite:///{root}/store/mlflow.db")
    experiment = client.get_experiment_by_name("oneshot-digits")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("autoprune.kind") == "search")
    return client, parent, [r for r in runs if r.data.tags.get("autoprune.kind") == "trial"]


def test_a_one_shot_search_logs_its_candidates_and_finalizes_the_fronts_best(tmp_path: Path, capsys) -> None:
    pipeline = _pipeline(tmp_path)
    assert run_cli("run", str(pipeline)) == 0
    client, parent, trials = _runs(tmp_path)
    artifacts = {item.path for item in client.list_artifacts(parent.info.run_id)}
    assert {"candidates.csv", "candidates_macs.png", "front.csv"} <= artifacts
    assert parent.data.metrics["candidates_scored"] + parent.data.metrics.get("candidates_failed", 0) == 60
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "supernet.val_accuracy")] == [1]
    assert len(trials) == 3 and all(run.data.tags["pareto"] == "true" for run in trials)
    assert all("front.test_accuracy" in run.data.metrics and run.data.metrics["calibrated"] == 1.0 for run in trials)
    versions = client.search_model_versions("name = 'oneshot-digits'")
    assert len(versions) == 3 and "champion" in client.get_registered_model("oneshot-digits").aliases
    table = Path(client.download_artifacts(parent.info.run_id, "candidates.csv")).read_text().splitlines()
    assert len(table) == 61 and table[0].startswith("candidate,state,val_accuracy,params,macs")
    on_front = [row for row in table[1:] if row.split(",")[7] == "True"]
    assert len(on_front) >= 3  # the trials were chosen among them

    capsys.readouterr()
    assert run_cli("run", str(pipeline), "--resume") == 0  # the budget is spent: nothing new
    assert "Nothing to do: study oneshot-digits had spent its budget" in capsys.readouterr().out
    _, _, again = _runs(tmp_path)
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in trials)


@pytest.mark.slow  # CI runs it with the slow tests: the default suite stays under ten minutes
def test_a_one_shot_study_does_not_resume_as_a_trials_study(tmp_path: Path, capsys) -> None:
    pipeline = _pipeline(tmp_path, candidates=20, epochs=0)
    assert run_cli("run", str(pipeline)) == 0
    assert run_cli("run", str(pipeline), "--resume", "--set", "search.strategy=trials") == 2
    assert "search.strategy changed since study 'oneshot-digits' started" in capsys.readouterr().err


@pytest.mark.slow
def test_a_one_shot_run_killed_while_scoring_goes_on_from_the_candidates_it_scored(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, candidates=3000, epochs=1)
    command = [os.path.join(os.path.dirname(sys.executable), "autoprune"), "run", str(pipeline)]
    process = subprocess.Popen(
        command, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    journal = tmp_path / "store" / "oneshot" / "oneshot-digits.journal"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not journal.exists() or journal.stat().st_size < 200_000):
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    scored = len(optuna.load_study(study_name="oneshot-digits", storage=storage).trials)
    assert 0 < scored < 3000
    assert run_cli("run", str(pipeline), "--resume", "--set", "oneshot.candidates=" + str(scored + 40)) == 0
    trials = optuna.load_study(study_name="oneshot-digits", storage=storage).trials
    assert len(trials) == scored + 40  # the killed run's candidates kept, the rest scored once
    _, parent, runs = _runs(tmp_path)
    assert len(runs) == 3 and parent.info.status == "FINISHED"


def test_one_shot_candidates_keep_to_a_size_limit_and_fit_to_it(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, candidates=40, epochs=0)
    sets = ["constraints.max_params=1200", "search.fit_to_limit=true"]
    assert run_cli("run", str(pipeline), *[arg for s in sets for arg in ("--set", s)]) == 0
    client, parent, trials = _runs(tmp_path)
    assert trials and all(run.data.metrics["params"] <= 1200 for run in trials)  # every member within the limit
    assert all(run.data.metrics["params"] >= 900 for run in trials)  # and filling it: fitted, not left small
    table = Path(client.download_artifacts(parent.info.run_id, "candidates.csv")).read_text().splitlines()
    fitted = [float(row.split(",")[3]) for row in table[1:] if row.split(",")[1] == "complete"]
    assert fitted and max(fitted) <= 1200
