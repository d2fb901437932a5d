"""The main job end to end: parent and child runs, the front, test accuracy, registry and aliases."""

from __future__ import annotations

import itertools
import json
import math
import statistics

import optuna
import pytest
from mlflow.tracking import MlflowClient

from .conftest import Store


def _runs(store: Store):
    client = MlflowClient(store.uri)
    experiment = client.get_experiment_by_name("e2e-digits")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("autoprune.kind") == "search"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    return client, parents, children


def _dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _architecture_latency(children) -> dict[str, float]:
    """Run id -> the median latency ratio of the complete trials keeping the same channels."""
    by_kept: dict[tuple, list] = {}
    for c in children:
        kept = tuple(sorted((k, v) for k, v in c.data.metrics.items() if k.startswith("kept.")))
        by_kept.setdefault(kept, []).append(c)
    return {
        c.info.run_id: statistics.median(s.data.metrics["latency_ratio"] for s in same)
        for same in by_kept.values()
        for c in same
    }


def test_one_parent_and_one_child_per_trial_after_resume(finished_search: Store) -> None:
    _, parents, children = _runs(finished_search)
    assert len(parents) == 1
    parent = parents[0]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    numbers = [int(c.data.tags["autoprune.trial"]) for c in children]
    assert len(numbers) == len(set(numbers)) == 9  # --resume added 3 trials and duplicated no child run
    assert parent.info.status == "FINISHED" and all(c.info.status == "FINISHED" for c in children)
    assert all(c.info.run_name.startswith(f"t{int(c.data.tags['autoprune.trial']):03d} acc=") for c in children)
    params = children[0].data.params
    assert {"importance", "lr", "epochs", "distill_alpha", "ratio.features.0", "ratio.features.4"} <= set(params)


def test_pareto_tags_are_exactly_the_non_dominated_feasible_set(finished_search: Store) -> None:
    _, parents, children = _runs(finished_search)
    dense_val = parents[0].data.metrics["dense_val_accuracy"]
    feasible = [c for c in children if dense_val - c.data.metrics["val_accuracy"] <= 0.05 + 1e-12]
    latency = _architecture_latency(children)  # one latency per architecture, as the front counts it
    points = {
        c.info.run_id: (-c.data.metrics["val_accuracy"], c.data.metrics["macs"], latency[c.info.run_id])
        for c in feasible
    }
    expected = {rid for rid, p in points.items() if not any(_dominates(q, p) for q in points.values())}
    tagged = {c.info.run_id for c in children if c.data.tags["pareto"] == "true"}
    assert tagged == expected and tagged
    for c in children:
        rank = c.data.tags["pareto_rank"]
        if c.info.run_id in expected:
            assert rank == "1"
        elif c in feasible:
            assert rank.isdigit() and int(rank) > 1
        else:
            assert rank == "infeasible"


def _repeated(children) -> set[int]:
    """Trials whose channels another trial keeps too (one architecture, timed per trial by Optuna)."""
    kept = {
        int(c.data.tags["autoprune.trial"]): tuple(
            sorted((k, v) for k, v in c.data.metrics.items() if k.startswith("kept."))
        )
        for c in children
    }
    return {n for n, k in kept.items() if list(kept.values()).count(k) > 1}


def test_front_is_optunas_best_trials_up_to_repeated_architectures(finished_search: Store) -> None:
    _, _, children = _runs(finished_search)
    storage = f"sqlite:///{finished_search.root / 'store' / 'optuna.db'}"
    study = optuna.load_study(study_name="e2e-digits", storage=storage)
    assert len(study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == 9
    tagged = {int(c.data.tags["autoprune.trial"]) for c in children if c.data.tags["pareto"] == "true"}
    repeated = _repeated(children)
    # Optuna judges each trial's own timing; ours pools it per architecture: they can differ only there
    assert {t.number for t in study.best_trials} ^ tagged <= repeated


def test_front_members_have_test_accuracy_plan_model_and_version(finished_search: Store) -> None:
    client, _, children = _runs(finished_search)
    versions = {int(v.tags["autoprune.trial"]): v for v in client.search_model_versions("name = 'e2e-digits'")}
    for child in children:
        number = int(child.data.tags["autoprune.trial"])
        if child.data.tags["pareto"] != "true":
            assert "front.test_accuracy" not in child.data.metrics  # the test split is used for the front only
            continue
        assert 0.5 < child.data.metrics["front.test_accuracy"] <= 1.0
        files = {a.path for a in client.list_artifacts(child.info.run_id, "pruned")}
        assert {"pruned/plan.json", "pruned/state_dict.pt", "pruned/model.onnx"} <= files
        assert versions[number].run_id == child.info.run_id
        assert versions[number].tags["pareto"] == "true"
        assert "Test accuracy" in versions[number].description
        curve = client.get_metric_history(
            child.info.run_id, "finalize.val_accuracy"
        )  # the final fine-tune, epoch by epoch
        assert [m.step for m in sorted(curve, key=lambda m: m.step)] == list(
            range(1, int(child.data.params["front.epochs"]) + 1)
        )
        assert len(client.get_metric_history(child.info.run_id, "finalize.train_loss")) == len(curve)


def test_aliases_point_at_the_right_versions(finished_search: Store) -> None:
    client, parents, children = _runs(finished_search)
    front = [c for c in children if c.data.tags["pareto"] == "true"]
    metric = {int(c.data.tags["autoprune.trial"]): c.data.metrics for c in front}
    dense_test = parents[0].data.metrics["dense_test_accuracy"]
    accuracy = {n: m["front.test_accuracy"] for n, m in metric.items()}  # the figures the UI's front view shows
    eligible = [n for n in metric if accuracy[n] >= dense_test - 0.02]
    expected = {
        "smallest": {min(metric, key=lambda n: (metric[n]["front.params"], -accuracy[n]))},
        "fastest": {
            n for n, m in metric.items() if m["front.speedup"] == max(m["front.speedup"] for m in metric.values())
        },
        "most-accurate": {max(metric, key=lambda n: (accuracy[n], -metric[n]["front.macs"]))},
    }
    expected["champion"] = (
        {min(eligible, key=lambda n: (metric[n]["front.macs"], -accuracy[n]))}
        if eligible
        else expected["most-accurate"]
    )
    for alias, numbers in expected.items():  # (speed-ups the UI shows equal, to 3 decimals, may share the alias)
        version = client.get_model_version_by_alias("e2e-digits", alias)
        assert int(version.tags["autoprune.trial"]) in numbers, alias
    dense = {p.info.run_id: p.data.metrics["dense_latency_ms"] for p in parents}  # each search's reference
    for run in children:  # a member's latency in ms is the dense one / its speed-up: the UI's columns rank the
        metrics, dense_ms = run.data.metrics, dense[run.data.tags["mlflow.parentRunId"]]  # front as the aliases do
        if "front.latency_ms" in metrics:
            assert metrics["front.latency_ms"] == pytest.approx(dense_ms / metrics["front.speedup"], rel=2e-3)


def test_champion_loads_by_alias_as_an_ordinary_module_on_raw_inputs(finished_search: Store) -> None:
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    import mlflow

    mlflow.set_tracking_uri(finished_search.uri)
    model = mlflow.pytorch.load_model("models:/e2e-digits@champion")
    model.eval()  # an ordinary module: eval() and train() work
    assert model.training is False
    digits = load_digits()  # the raw pixels, 0-16, as the digits source gives them: no normalisation by hand
    raw = torch.as_tensor(digits.images[:, None], dtype=torch.float32)
    with torch.no_grad():
        predictions = model(raw).argmax(1)
    accuracy = float((predictions == torch.as_tensor(digits.target)).float().mean())
    assert accuracy > 0.8 and math.isfinite(accuracy)
    pyfunc = mlflow.pyfunc.load_model("models:/e2e-digits@champion")
    assert pyfunc.predict(raw[:3].numpy().astype(np.float32)).shape == (3, 10)
    described = pyfunc.metadata.metadata
    assert json.loads(described["class_names"]) == [str(d) for d in range(10)]
    assert float(described["input_scale"]) == 1 / 16 and json.loads(described["input_shape"]) == [1, 8, 8]
    assert list(pyfunc.metadata.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 1, 8, 8]


def test_parent_run_holds_the_inputs_and_the_summary(finished_search: Store) -> None:
    client, parents, _ = _runs(finished_search)
    parent = parents[0]
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {
        "pipeline.yaml",
        "resolved_space.json",
        "front.csv",
        "pareto_macs.png",
        "pareto_latency_ratio.png",
        "hypervolume.png",
    } <= files
    history = client.get_metric_history(parent.info.run_id, "hypervolume")
    values = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert values and all(b >= a - 1e-12 for a, b in itertools.pairwise(values))  # the front only grows
    assert "tags.pareto" in parent.data.tags["mlflow.note.content"]
    assert parent.data.metrics["trials_completed"] == 9


@pytest.mark.parametrize("command", ["pareto", "validate"])
def test_cli_reads_the_store(finished_search: Store, command: str, capsys) -> None:
    from ..helpers import run_cli

    assert run_cli(command, str(finished_search.pipeline)) == 0
    out = capsys.readouterr().out
    assert ("front of" in out) if command == "pareto" else ("OK" in out and "features.0" in out)


def test_resume_refuses_a_changed_search(finished_search: Store, capsys) -> None:
    from ..helpers import run_cli

    pipeline = str(finished_search.pipeline)
    assert run_cli("run", pipeline, "--resume", "--set", "search.space.pruning.importance=[taylor]") == 2
    err = capsys.readouterr().err
    assert (
        "search.space: search.space changed since study 'e2e-digits' started, so its trials are not comparable" in err
    )
    assert run_cli("run", pipeline, "--resume", "--set", "constraints.max_accuracy_drop=0.2") == 2
    assert "constraints: constraints changed since study 'e2e-digits' started" in capsys.readouterr().err
    _, _, children = _runs(finished_search)
    assert len(children) == 9  # nothing was added


def test_a_second_search_in_the_store_reuses_the_cached_dense_model(finished_search: Store) -> None:
    from ..helpers import run_cli

    sets = ["name=e2e-digits-again", "search.trials=1", "finalize.epochs=1", "tracking.register=false"]
    assert run_cli("run", str(finished_search.pipeline), *[a for s in sets for a in ("--set", s)]) == 0
    client, parents, _ = _runs(finished_search)
    again = client.get_experiment_by_name("e2e-digits-again")
    (second,) = [r for r in client.search_runs([again.experiment_id]) if r.data.tags.get("autoprune.kind") == "search"]
    assert parents[0].data.params["dense_source"] == "trained"
    assert second.data.params["dense_source"] == "cache"  # same model, recipe and data: not trained again
    for key in ("dense_val_accuracy", "dense_test_accuracy", "dense_params"):
        assert second.data.metrics[key] == parents[0].data.metrics[key]


def _store_state(store: Store) -> tuple:
    """Every run's status, end time, tags and metric histories; every model version's description
    and tags; every artifact file's size and modification time."""
    client, parents, children = _runs(store)
    runs = {
        run.info.run_id: (
            run.info.status,
            run.info.end_time,
            dict(run.data.tags),
            {
                key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
                for key in run.data.metrics
            },
        )
        for run in parents + children
    }
    versions = {
        (v.name, v.version): (v.description, dict(v.tags), v.last_updated_timestamp)
        for v in client.search_model_versions()
    }
    files = {
        path: (path.stat().st_size, path.stat().st_mtime_ns)
        for path in (store.root / "store").rglob("*")
        if path.is_file() and path.suffix != ".db"
    }
    return runs, versions, files


def test_resume_of_a_complete_search_says_so_and_changes_nothing(finished_search: Store, capsys) -> None:
    from ..helpers import run_cli

    before = _store_state(finished_search)
    assert run_cli("run", str(finished_search.pipeline), "--resume") == 0
    out = capsys.readouterr().out
    assert "Nothing to do: study e2e-digits had spent its budget and was concluded" in out
    assert "Pareto front of e2e-digits" in out  # the stored front, as the run printed it
    assert _store_state(finished_search) == before


def _dashboard_json(storage: str, path: str) -> dict:
    """What optuna-dashboard serves at ``path`` over ``storage`` (its own WSGI app, no server)."""
    import io

    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
    }
    statuses: list[str] = []
    body = b"".join(app(environ, lambda status, headers, *_: statuses.append(status)))
    assert statuses and statuses[0].startswith("200"), statuses
    return json.loads(body)


def test_optuna_dashboards_front_is_the_tagged_front(finished_search: Store) -> None:
    """optuna-dashboard's Pareto plot keeps the trials whose constraints (the list it reads) are all
    <= 0 and draws their non-dominated set: the same set autoprune tags, up to repeated architectures."""
    _, _, children = _runs(finished_search)
    storage = f"sqlite:///{finished_search.root / 'store' / 'optuna.db'}"
    study_id = optuna.load_study(study_name="e2e-digits", storage=storage)._study_id
    detail = _dashboard_json(storage, f"/api/studies/{study_id}")
    signs = [1 if direction == "minimize" else -1 for direction in detail["directions"]]
    points = {
        t["number"]: tuple(sign * float(v) for sign, v in zip(signs, t["values"]))
        for t in detail["trials"]
        if t["state"] == "Complete" and all(float(c) <= 0 for c in t["constraints"])
    }
    assert any(t["constraints"] for t in detail["trials"])  # the dashboard sees the constraints
    shown = {n for n, p in points.items() if not any(_dominates(q, p) for q in points.values())}
    tagged = {int(c.data.tags["autoprune.trial"]) for c in children if c.data.tags["pareto"] == "true"}
    assert shown and shown ^ tagged <= _repeated(children)


def _started(run) -> int:
    return run.info.start_time


def test_the_front_address_opens_a_saved_view_of_logged_columns(finished_search: Store) -> None:
    from autoprune.tracking import Tracker

    client, _, children = _runs(finished_search)
    experiment = client.get_experiment_by_name("e2e-digits")
    view = json.loads(experiment.tags["mlflow.sharedViewState.autoprune-front"])
    parent = max(client.search_runs([experiment.experiment_id], "tags.`autoprune.kind` = 'search'"), key=_started)
    assert view["searchFilter"].startswith(
        f"tags.pareto = \"true\" and tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert view["orderByKey"] == "metrics.`front.test_accuracy`"
    own = [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]
    listed = client.search_runs([experiment.experiment_id], view["searchFilter"])  # MLflow takes the filter
    assert sorted(r.info.run_id for r in listed) == sorted(  # the front's members: each has a model
        c.info.run_id for c in own if c.data.tags["pareto"] == "true" and "front.test_accuracy" in c.data.metrics
    )
    members = [c for c in children if "front.test_accuracy" in c.data.metrics]
    metrics = [
        c.removeprefix("metrics.`").removesuffix("`") for c in view["selectedColumns"] if c.startswith("metrics.")
    ]
    assert metrics and all(name in member.data.metrics for member in members for name in metrics)
    tracker = Tracker(finished_search.uri, "e2e-digits", create=False).open()
    assert tracker.front_url.endswith(
        f"/#/experiments/{experiment.experiment_id}/runs?viewStateShareKey=autoprune-front"
    )
