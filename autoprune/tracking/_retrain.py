"""What ``autoprune retrain`` reads from and writes to MLflow: the last front, the champion, the report."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._client import KIND_TAG, PARENT_TAG, TRIAL_TAG, Tracker

__all__ = ["champion_version", "last_front_params", "log_retrain_report", "set_champion"]

REPORT_TAG = "autoprune.retrain.decision"


def last_front_params(tracker: Tracker) -> tuple[str | None, list[dict[str, Any]]]:
    """The most recent finished search of the experiment and its front members: their study, trial
    number and params as logged (MLflow keeps text; the study has the exact values)."""
    searches = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.`{KIND_TAG}` = 'search' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not searches:
        return None, []
    parent = searches[0].info.run_id
    study = searches[0].data.tags.get("autoprune.study")
    front = tracker.search(f"tags.`{PARENT_TAG}` = '{parent}' and tags.pareto = 'true'")
    front.sort(key=lambda run: int(run.data.tags.get(TRIAL_TAG, 0)))
    return parent, [
        {"study": study, "trial": int(run.data.tags.get(TRIAL_TAG, -1)), "params": dict(run.data.params)}
        for run in front
    ]


def champion_version(tracker: Tracker, model: str) -> tuple[int, str] | None:
    """(version, run id) the registered model's ``champion`` alias points at, if any."""
    if not tracker.client.search_registered_models(filter_string=f"name = '{model}'"):
        return None
    aliases = tracker.client.get_registered_model(model).aliases or {}
    if "champion" not in aliases:
        return None
    version = tracker.client.get_model_version(model, str(aliases["champion"]))
    return int(version.version), str(version.run_id)


def set_champion(tracker: Tracker, model: str, version: int) -> None:
    tracker.client.set_registered_model_alias(model, "champion", str(version))


def log_retrain_report(tracker: Tracker, parent: str, report: Mapping[str, Any], text: str) -> None:
    """The decision on the retrain's parent run: JSON and a readable text, a tag and two metrics."""
    tracker.log_dict(parent, json.loads(json.dumps(report, default=str)), "retrain_report.json")
    tracker.log_text(parent, text, "retrain_report.md")
    metrics = {
        key: float(report[key])
        for key in ("new_test_accuracy", "champion_test_accuracy")
        if report.get(key) is not None
    }
    tracker.log(
        parent,
        metrics={f"retrain_{key}": value for key, value in metrics.items()},
        tags={REPORT_TAG: str(report["decision"]), "autoprune.retrain.reason": str(report["reason"])[:5000]},
    )
