"""Reading finished searches back from MLflow: the latest search's front, and a run's exports."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AutoPruneError
from ._client import KIND_TAG, PARENT_TAG, TRIAL_TAG, Tracker
from ._front import MEMBER_METRICS

__all__ = ["FrontView", "latest_front", "export_run", "EXPORT_FORMATS"]

EXPORT_FORMATS = {"onnx": ("model.onnx",), "state-dict": ("plan.json", "state_dict.pt")}


@dataclass
class FrontView:
    parent_run_id: str
    parent_name: str
    status: str
    trials: int
    dense: dict[str, float]
    rows: list[dict[str, Any]]
    registered_model: str | None = None


def _versions(tracker: Tracker, parent: str) -> tuple[str | None, dict[int, tuple[int, list[str]]]]:
    """The registered model this search created versions of, and trial -> (version, aliases)."""
    found: dict[int, tuple[int, list[str]]] = {}
    name = None
    for model in tracker.client.search_registered_models():
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        for version in tracker.client.search_model_versions(f"name = '{model.name}'"):
            if version.tags.get("autoprune.parent_run") == parent and TRIAL_TAG in version.tags:
                found[int(version.tags[TRIAL_TAG])] = (int(version.version), sorted(aliases.get(str(version.version), [])))
                name = model.name
    return name, found


def latest_front(tracker: Tracker, parent: str | None = None) -> FrontView:
    """The front of search ``parent`` (default: the most recent search in the experiment), with the
    final figures of its members, as ``autoprune run`` printed them."""
    if parent is None:
        searches = tracker.client.search_runs(
            [tracker.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'search'", order_by=["attributes.start_time DESC"], max_results=1
        )
        if not searches:
            raise AutoPruneError(f"experiment {tracker.experiment!r} in {tracker.uri} has no search yet")
        parent_run = searches[0]
    else:
        parent_run = tracker.client.get_run(parent)
    parent_id = parent_run.info.run_id
    runs = tracker.search(f"tags.`{PARENT_TAG}` = '{parent_id}'")
    registered, versions = _versions(tracker, parent_id)
    rows = []
    for run in runs:
        metrics = run.data.metrics
        if run.data.tags.get("pareto") != "true" or "test_accuracy" not in metrics:
            continue
        trial = int(run.data.tags.get(TRIAL_TAG, -1))
        version, aliases = versions.get(trial, ("", []))
        rows.append({"trial": trial, "run_id": run.info.run_id, "version": version, "aliases": ",".join(aliases),
                     **{key: metrics.get(key) for key in MEMBER_METRICS}})  # fmt: skip
    dense = {key.removeprefix("dense_"): value for key, value in parent_run.data.metrics.items() if key.startswith("dense_")}
    return FrontView(parent_id, parent_run.info.run_name, parent_run.info.status, len(runs), dense, rows, registered)


def export_run(tracker: Tracker, run_id: str, export_format: str, out: Path) -> list[Path]:
    """Copy a front member's exported files (ONNX, or plan + state dict) into ``out``."""
    if export_format not in EXPORT_FORMATS:
        raise AutoPruneError(f"unknown format {export_format!r}; choose {' or '.join(EXPORT_FORMATS)}")
    try:
        run = tracker.client.get_run(run_id)
    except Exception as exc:  # MLflow raises MlflowException for unknown ids
        raise AutoPruneError(f"no run {run_id!r} in {tracker.uri}") from exc
    names = {item.path.rsplit("/", 1)[-1] for item in tracker.client.list_artifacts(run_id, "pruned")}
    missing = [name for name in EXPORT_FORMATS[export_format] if name not in names]
    if missing:
        hint = " (only Pareto-front runs, tagged pareto=true, have exports)" if run.data.tags.get("pareto") != "true" else ""
        raise AutoPruneError(f"run {run_id} has no {', '.join(missing)}{hint}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXPORT_FORMATS[export_format]:
        local = tracker.client.download_artifacts(run_id, f"pruned/{name}")
        target = out / name
        shutil.copyfile(local, target)
        written.append(target)
    return written
