"""Reading a search back from MLflow: `autoprune pareto` sees the front as the run printed it."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from autoprune.tracking import SAME_AS_TAG, Tracker, latest_front


def test_the_front_read_back_counts_the_trials_that_repeat_a_member(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("x", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment, tags={"autoprune.kind": "search"}, run_name="search x").info.run_id
    for trial, tags in ((1, {"pareto": "true"}), (4, {"pareto": "true"}), (9, {"pareto": "true", SAME_AS_TAG: "4"})):
        client.create_run(experiment, tags={"mlflow.parentRunId": parent, "autoprune.trial": str(trial), **tags})
    client.create_run(experiment, tags={"mlflow.parentRunId": parent, "autoprune.trial": "2", "pareto": "false"})
    view = latest_front(Tracker(uri, "x", create=False).open())
    assert (view.trials, view.on_front, view.copies) == (4, 3, {9: 4})
