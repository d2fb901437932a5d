"""search.seed_uniform (uniform plans tried first), finalize.max_members (only the members adding the
most hypervolume are finalized) and finalize.lr / distill_alpha (the final fine-tune's own recipe)."""

from __future__ import annotations

import json
import statistics
import textwrap
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from autoprune.search import hypervolume

from ..helpers import run_cli
from .conftest import PIPELINE


def test_uniform_seeds_come_first_and_only_max_members_are_finalized(tmp_path: Path) -> None:
    db = tmp_path / "store" / "mlflow.db"
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(db=db)))
    sets = [
        "search.trials=5",
        "search.seed_uniform=2",
        "finalize.max_members=2",
        "finalize.epochs=1",
        "constraints.max_accuracy_drop=1.0",
        "finalize.lr=0.003",
        "finalize.distill_alpha=0.25",
    ]
    assert run_cli("run", str(pipeline), *[a for s in sets for a in ("--set", s)]) == 0

    study = optuna.load_study(study_name="e2e-digits", storage=f"sqlite:///{tmp_path / 'store' / 'optuna.db'}")
    first = [{k: v for k, v in t.params.items() if k.startswith("ratio.")} for t in study.trials[:2]]
    assert first == [
        {"ratio.features.0": 0.4, "ratio.features.4": 0.4},
        {"ratio.features.0": 0.8, "ratio.features.4": 0.8},
    ]

    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("e2e-digits").experiment_id], "tags.pareto = 'true'")
    finalized = [r for r in runs if "front.test_accuracy" in r.data.metrics]
    assert len(finalized) == min(2, len(runs))
    # logged on each member, whatever lr its trial had; epochs: max(finalize.epochs=1, the trial's own)
    recipes = {(float(r.data.params["front.lr"]), float(r.data.params["front.distill_alpha"])) for r in finalized}
    assert recipes == {(0.003, 0.25)}
    assert all(int(r.data.params["front.epochs"]) == max(1, int(r.data.params["epochs"])) for r in finalized)
    assert len(client.search_model_versions("name = 'e2e-digits'")) == len(finalized)
    if len(runs) > 2:  # greedily by hypervolume: the member dominating the most, then the one adding the most to it
        dense = client.get_run(runs[0].data.tags["mlflow.parentRunId"]).data.metrics
        losses = {
            r.info.run_id: (
                1 - r.data.metrics["val_accuracy"],
                r.data.metrics["macs"] / dense["dense_macs"],
                r.data.metrics["latency_ratio"],
            )
            for r in runs
        }
        first = max(losses, key=lambda i: hypervolume([losses[i]], [1, 1, 1]))
        second = max(set(losses) - {first}, key=lambda i: hypervolume([losses[first], losses[i]], [1, 1, 1]))
        assert {first, second} == {r.info.run_id for r in finalized}


def test_trials_over_a_size_limit_are_not_fine_tuned_and_never_reach_the_front(tmp_path: Path, capsys) -> None:
    db = tmp_path / "store" / "mlflow.db"
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(db=db)))
    sets = [
        "search.trials=6",
        "constraints.max_params=500",
        "constraints.max_accuracy_drop=1.0",
        "finalize.epochs=1",
        "finalize.max_members=1",
    ]
    assert run_cli("run", str(pipeline), *[a for s in sets for a in ("--set", s)]) == 0

    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs(
        [client.get_experiment_by_name("e2e-digits").experiment_id], "tags.autoprune.kind = 'trial'"
    )
    over = [r for r in runs if r.data.metrics["params"] > 500]
    within = [r for r in runs if r.data.metrics["params"] <= 500]
    assert over and within  # the sampler's seed gives both kinds
    for run in over:
        assert run.data.metrics["finetune_skipped"] == 1.0 and run.data.metrics["epochs_run"] == 0
        assert run.info.run_name.split()[1] == "over-limit" and run.data.tags["pareto_rank"] == "infeasible"
    for run in within:
        assert "finetune_skipped" not in run.data.metrics and run.data.metrics["epochs_run"] >= 1
        assert "over-limit" not in run.info.run_name
    assert all(r.data.tags["pareto"] == "false" for r in over)
    assert any(r.data.tags["pareto"] == "true" for r in within)
    assert f"{len(over)} of 6 trials broke a size limit and were not fine-tuned" in capsys.readouterr().out


def test_fit_to_limit_brings_every_proposal_within_the_size_limit(tmp_path: Path, capsys) -> None:
    db = tmp_path / "store" / "mlflow.db"
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(db=db)))
    sets = [
        "search.trials=4",
        "search.fit_to_limit=true",
        "constraints.max_params=700",
        "constraints.max_accuracy_drop=1.0",
        "finalize.epochs=1",
        "finalize.max_members=1",
    ]
    assert run_cli("run", str(pipeline), *[a for s in sets for a in ("--set", s)]) == 0

    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("e2e-digits").experiment_id
    runs = client.search_runs([experiment], "tags.autoprune.kind = 'trial'")
    assert len(runs) == 4
    for run in runs:  # the unfitted proposals range from dense to 0.8 / 0.8 (438 params)
        assert 0.5 * 700 <= run.data.metrics["params"] <= 700 and "finetune_skipped" not in run.data.metrics
        fitted = {name: float(value) for name, value in run.data.params.items() if name.startswith("fitted.")}
        assert set(fitted) == {"fitted.features.0", "fitted.features.4"}
        assert run.data.metrics["kept.features.4"] == 16 - round(16 * fitted["fitted.features.4"])
    members = [
        r for r in client.search_runs([experiment], "tags.pareto = 'true'") if "front.test_accuracy" in r.data.metrics
    ]
    assert len(members) == 1 and members[0].data.metrics["front.params"] <= 700  # the exported model is the fitted one
    assert "broke a size limit" not in capsys.readouterr().out


def test_a_latency_table_search_predicts_one_latency_per_architecture_and_checks_it_on_the_front(
    tmp_path: Path,
) -> None:
    db = tmp_path / "store" / "mlflow.db"
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(db=db)))
    sets = ["search.trials=5", "latency.mode=table", "finalize.epochs=1", "constraints.max_accuracy_drop=1.0"]
    assert run_cli("run", str(pipeline), *[a for s in sets for a in ("--set", s)]) == 0
    tables = list((tmp_path / "store" / "cache").glob("latency-*.json"))
    assert len(tables) == 1 and json.loads(tables[0].read_text())["entries"]  # kept beside the store
    study = optuna.load_study(study_name="e2e-digits", storage=f"sqlite:///{tmp_path / 'store' / 'optuna.db'}")
    by_channels: dict[tuple, set[float]] = {}
    for trial in study.trials:
        outcome = trial.user_attrs.get("autoprune", {})
        if outcome.get("kept"):
            by_channels.setdefault(tuple(sorted(outcome["kept"].items())), set()).add(
                outcome["metrics"]["latency_ratio"]
            )
    assert all(len(ratios) == 1 for ratios in by_channels.values())  # one prediction per architecture
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("e2e-digits")
    parent = client.search_runs([experiment.experiment_id], filter_string="tags.`autoprune.kind` = 'search'")[0]
    front = client.search_runs([experiment.experiment_id], filter_string="tags.pareto = 'true'")
    finalized = [r for r in front if "front.speedup" in r.data.metrics]
    # what the search optimised (the table's ratio to dense) against finalize's, measured side by side
    predicted = [r.data.metrics["latency_ratio"] for r in finalized]
    measured = [1 / r.data.metrics["front.speedup"] for r in finalized]
    if len(finalized) >= 2:
        error = statistics.median(abs(p - m) / m for p, m in zip(predicted, measured))
        assert parent.data.metrics["latency_table.median_error"] == pytest.approx(error, abs=0.005)
    if len(set(predicted)) >= 2 and len(set(measured)) >= 2:
        assert -1.0 <= parent.data.metrics["latency_table.rank_correlation"] <= 1.0
    else:  # undefined when one side is constant: not logged rather than logged as NaN
        assert "latency_table.rank_correlation" not in parent.data.metrics
