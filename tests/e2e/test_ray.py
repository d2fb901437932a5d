"""The Ray Tune backend on a local Ray: same study, same MLflow layout as the Optuna backend, and ASHA."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from ..helpers import run_cli
from .conftest import PIPELINE, Store

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_search(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The e2e pipeline on the ray backend (2 trials at a time): 6 trials, then ``--resume`` to 9."""
    root = tmp_path_factory.mktemp("e2e-ray")
    db = root / "store" / "mlflow.db"
    pipeline = root / "pipeline.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(db=db)))
    ray = ("--backend", "ray", "--set", "ray.max_concurrent_trials=2")
    assert run_cli("run", str(pipeline), *ray) == 0
    assert run_cli("run", str(pipeline), *ray, "--resume", "--set", "search.trials=9") == 0
    return Store(pipeline, f"sqlite:///{db}", root)


def _layout(store: Store) -> dict[str, object]:
    """What a person sees in MLflow, without the values that depend on the sampled candidates."""
    client = MlflowClient(store.uri)
    experiment = client.get_experiment_by_name("e2e-digits")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get("autoprune.kind") == "search")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    front = [c for c in children if c.data.tags["pareto"] == "true"]
    volatile = {
        "autoprune.worker",
        "mlflow.user",
        "mlflow.source.name",
        "mlflow.source.type",
        "mlflow.source.git.commit",
    }
    versions = client.search_model_versions("name = 'e2e-digits'")
    return {
        "children": len(children),
        "trial numbers": sorted(int(c.data.tags["autoprune.trial"]) for c in children),
        "states": sorted({c.info.status for c in children}),
        "parent tags": sorted(set(parent.data.tags) - volatile - {"mlflow.note.content"}),
        "parent params": sorted(set(parent.data.params) - {"overrides"}),
        "parent metrics": sorted(parent.data.metrics),
        "parent artifacts": sorted(a.path for a in client.list_artifacts(parent.info.run_id)),
        "child params": sorted({k for c in children for k in c.data.params}),
        "child tags": sorted({k for c in children for k in c.data.tags} - volatile),
        "child metrics": sorted({k for c in children for k in c.data.metrics}),
        "front artifacts": sorted({a.path for c in front for a in client.list_artifacts(c.info.run_id, "pruned")}),
        "front metrics": sorted({k for c in front for k in c.data.metrics}),
        "epoch steps": sorted({len(client.get_metric_history(c.info.run_id, "val_accuracy")) > 0 for c in children}),
        "versions": len(versions) == len(front),
        "version tags": sorted({k for v in versions for k in v.tags}),
        "aliases": sorted(client.get_registered_model("e2e-digits").aliases),
    }


def test_ray_backend_runs_the_pipeline_and_resumes(ray_search: Store) -> None:
    storage = f"sqlite:///{ray_search.root / 'store' / 'optuna.db'}"
    study = optuna.load_study(study_name="e2e-digits", storage=storage)
    complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(complete) == 9
    assert not study.get_trials(states=[optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL])
    client = MlflowClient(ray_search.uri)
    runs = client.search_runs([client.get_experiment_by_name("e2e-digits").experiment_id], max_results=1000)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert sorted(int(c.data.tags["autoprune.trial"]) for c in children) == [t.number for t in complete]
    tagged = {int(c.data.tags["autoprune.trial"]) for c in children if c.data.tags["pareto"] == "true"}
    assert tagged == {t.number for t in study.best_trials}
    assert all(t.user_attrs["autoprune"]["metrics"]["epochs_run"] == t.params["epochs"] for t in complete)


def test_ray_and_optuna_backends_leave_the_same_mlflow_layout(finished_search: Store, ray_search: Store) -> None:
    optuna_layout, ray_layout = _layout(finished_search), _layout(ray_search)
    assert optuna_layout["children"] == 9
    for key in optuna_layout:
        assert ray_layout[key] == optuna_layout[key], key


ASHA_PIPELINE = """\
name: asha-digits
seed: 3
data: {{source: digits, batch_size: 64}}
model: {{arch: cnn, widths: [8, 16], train: {{epochs: 6, lr: 0.05}}}}
search:
  backend: ray
  space:
    pruning: {{ratio: {{low: 0.0, high: 0.9, step: 0.1}}, importance: [l1]}}
    finetune: {{lr: {{low: 0.00001, high: 0.05, log: true}}, epochs: 4}}
  sampler: random
  trials: 6
ray: {{max_concurrent_trials: 1, asha: {{enabled: true, grace_period: 1, reduction_factor: 4, rank_by: accuracy}}}}
objectives: {{accuracy: max, macs: min}}
latency: {{repeats: 5, warmup: 1}}
tracking: {{uri: "sqlite:///{db}", register_models: false}}
finalize: {{epochs: 1}}
"""


def test_asha_stops_weak_fine_tunes_early(tmp_path: Path) -> None:
    """Learning rates down to 1e-5 and ratios up to 0.9: some candidates are clearly behind after an
    epoch, and Ray's ASHA (one trial at a time, so every rung has a recorded cutoff) stops them."""
    db = tmp_path / "store" / "mlflow.db"
    pipeline = tmp_path / "asha.yaml"
    pipeline.write_text(textwrap.dedent(ASHA_PIPELINE.format(db=db)))
    assert run_cli("run", str(pipeline)) == 0
    study = optuna.load_study(study_name="asha-digits", storage=f"sqlite:///{tmp_path / 'store' / 'optuna.db'}")
    trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) == 6
    epochs = [t.user_attrs["autoprune"]["metrics"]["epochs_run"] for t in trials]
    assert min(epochs) < 4 and max(epochs) == 4, epochs
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("asha-digits").experiment_id], max_results=100)
    stopped = [r for r in runs if r.data.metrics.get("stopped_early") == 1.0]
    assert len(stopped) == sum(e < 4 for e in epochs)
    for run in stopped:  # a stopped trial is a finished trial with what it measured, not a failure
        assert run.info.status == "FINISHED"
        assert {"val_accuracy", "macs", "latency_ratio", "kept.features.0"} <= set(run.data.metrics)  # its channels too
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert len(history) == run.data.metrics["epochs_run"]


def test_ray_trials_over_a_size_limit_end_without_a_fine_tune(tmp_path: Path) -> None:
    """A trial over the limit reports no epoch to ASHA, only its final result: complete and infeasible."""
    db = tmp_path / "store" / "mlflow.db"
    pipeline = tmp_path / "asha.yaml"
    pipeline.write_text(textwrap.dedent(ASHA_PIPELINE.format(db=db)))
    assert run_cli("run", str(pipeline), "--set", "constraints.max_params=600", "--set", "search.trials=5") == 0
    study = optuna.load_study(study_name="asha-digits", storage=f"sqlite:///{tmp_path / 'store' / 'optuna.db'}")
    trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) == 5 and not study.get_trials(states=[optuna.trial.TrialState.FAIL])
    metrics = {t.number: t.user_attrs["autoprune"]["metrics"] for t in trials}
    over = {n for n, m in metrics.items() if m["params"] > 600}
    assert over and over != set(metrics)  # the seed gives both kinds
    assert all(metrics[n]["finetune_skipped"] == 1.0 and metrics[n]["epochs_run"] == 0 for n in over)
    assert all("finetune_skipped" not in m and m["epochs_run"] >= 1 for n, m in metrics.items() if n not in over)
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs(
        [client.get_experiment_by_name("asha-digits").experiment_id], "tags.autoprune.kind = 'trial'"
    )
    assert {int(r.data.tags["autoprune.trial"]) for r in runs if "over-limit" in r.info.run_name} == over
    assert all(r.info.status == "FINISHED" for r in runs)
