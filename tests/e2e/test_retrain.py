"""``autoprune retrain``: warm start from the last front, and a champion that moves only when the new model wins."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from ..helpers import run_cli
from .conftest import PIPELINE

WEAK = (
    "--set",
    "search.space.finetune.lr.low=0.00001",
    "--set",
    "search.space.finetune.lr.high=0.00002",
    "--set",
    "search.space.pruning.ratio.low=0.6",
    "--set",
    "constraints.max_accuracy_drop=1.0",
)


def _report(client: MlflowClient, experiment_id: str) -> tuple[dict, object]:
    parent = client.search_runs(
        [experiment_id], "tags.`autoprune.kind` = 'search'", order_by=["attributes.start_time DESC"]
    )[0]
    path = client.download_artifacts(parent.info.run_id, "retrain_report.json")
    return json.loads(Path(path).read_text()), parent


def _champion(client: MlflowClient) -> tuple[int, str]:
    version = client.get_model_version_by_alias("e2e-digits", "champion")
    return int(version.version), version.tags["autoprune.parent_run"]


@pytest.mark.slow  # CI runs it with the slow tests: the default suite stays under ten minutes
def test_retrain_promotes_a_better_model_and_keeps_the_champion_otherwise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store" / "mlflow.db"
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(db=db)))
    small = ("--set", "search.trials=4", "--set", "finalize.epochs=1")
    client = MlflowClient(f"sqlite:///{db}")

    # a deliberately weak first search (almost no fine-tuning of heavily pruned models) registers a champion
    assert run_cli("run", str(pipeline), *small, *WEAK) == 0
    first_champion = _champion(client)
    experiment_id = client.get_experiment_by_name("e2e-digits").experiment_id

    # a retrain on changed data (another seed, so other splits) with the normal space: the new candidate wins
    assert run_cli("retrain", str(pipeline), *small, "--set", "seed=1") == 0
    assert "retrain: promoted" in capsys.readouterr().out
    report, parent = _report(client, experiment_id)
    assert report["decision"] == "promoted" and report["champion_version"] == first_champion[0]
    assert report["new_test_accuracy"] > report["champion_test_accuracy"]
    assert "beats the champion's" in report["reason"]
    assert parent.data.tags["autoprune.retrain.decision"] == "promoted"
    assert _champion(client) == (report["new_version"], parent.info.run_id)  # the alias moved to the new version

    # another retrain that cannot win by the margin: the champion stays where it is
    assert run_cli("retrain", str(pipeline), *small, "--set", "seed=2", "--set", "champion.retrain_margin=1.0") == 0
    assert "retrain: kept" in capsys.readouterr().out
    report, parent = _report(client, experiment_id)
    assert report["decision"] == "kept" and "does not beat" in report["reason"]
    assert _champion(client) == (report["champion_version"], _champion(client)[1])
    assert _champion(client)[1] != parent.info.run_id  # still the previous retrain's version
    assert report["champion_test_accuracy"] is not None and report["new_version"] is not None
    text = Path(client.download_artifacts(parent.info.run_id, "retrain_report.md")).read_text()
    assert "decision: **kept**" in text

    # warm start: the new study first tried exactly the previous search's front candidates
    previous = [
        r
        for r in client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{report['previous_search']}'")
        if r.data.tags["pareto"] == "true"
    ]
    assert report["warm_start"] == len(previous) > 0
    storage = f"sqlite:///{tmp_path / 'store' / 'optuna.db'}"
    study = optuna.load_study(study_name="e2e-digits#3", storage=storage)
    first = [t.params for t in study.trials[: len(previous)]]
    earlier = optuna.load_study(study_name="e2e-digits#2", storage=storage)
    numbers = [int(r.data.tags["autoprune.trial"]) for r in previous]
    assert sorted(map(str, first)) == sorted(str(earlier.trials[n].params) for n in numbers)  # exact values


@pytest.mark.slow
def test_two_retrains_at_once_run_one_after_the_other(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    db = tmp_path / "store" / "mlflow.db"
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(db=db)))
    small = ["--set", "search.trials=3", "--set", "finalize.epochs=1"]
    assert run_cli("run", str(pipeline), *small) == 0
    command = [sys.executable, "-m", "autoprune.cli", "retrain", str(pipeline), *small]
    env = {**os.environ, "COLUMNS": "200"}
    first = subprocess.Popen(
        [*command, "--set", "seed=1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    second = subprocess.Popen(
        [*command, "--set", "seed=2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    outputs = [process.communicate(timeout=600)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert sum("another retrain of e2e-digits is running; waiting" in out for out in outputs) == 1

    client = MlflowClient(f"sqlite:///{db}")
    experiment_id = client.get_experiment_by_name("e2e-digits").experiment_id
    searches = client.search_runs(
        [experiment_id], "tags.`autoprune.kind` = 'search'", order_by=["attributes.start_time ASC"]
    )
    assert [s.info.status for s in searches] == ["FINISHED"] * 3
    reports = [
        json.loads(Path(client.download_artifacts(s.info.run_id, "retrain_report.json")).read_text())
        for s in searches[1:]
    ]
    # the one that waited warm-started from the front of the one that ran first
    assert reports[1]["previous_search"] == reports[0]["new_search"] == searches[1].info.run_id
    assert all(
        r["decision"] in ("promoted", "kept", "first-champion", "no-candidate") and r["reason"] for r in reports
    ), [(r["decision"], r["reason"]) for r in reports]
    champion = client.get_model_version_by_alias("e2e-digits", "champion")
    assert champion.tags["autoprune.parent_run"] in {s.info.run_id for s in searches}
