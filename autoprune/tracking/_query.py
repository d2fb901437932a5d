"""Reading finished searches back from MLflow: the latest search's front, and a run's exports."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AutoPruneError
from ._client import KIND_TAG, PARENT_TAG, TRIAL_TAG, Tracker

__all__ = ["FrontView", "latest_front", "export_run", "EXPORT_FORMATS"]

EXPORT_FORMATS = {"onnx": ("model.onnx",), "state-dict": ("plan.json", "state_dict.pt")}


@dataclass
class FrontView:
    parent_run_id: str
    parent_name: str
    trials: int
    rows: list[dict[str, Any]]


def latest_front(tracker: Tracker, parent: str | None = None) -> FrontView:
    """The front of search ``parent`` (default: the most recent search in the experiment)."""
    if parent is None:
        searches = tracker.client.search_runs(
            [tracker.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'search'", order_by=["attributes.start_time DESC"], max_results=1
        )
        if not searches:
            raise AutoPruneError(f"experiment {tracker.experiment!r} in {tracker.uri} has no finished search yet")
        parent_run = searches[0]
    else:
        parent_run = tracker.client.get_run(parent)
    parent_id = parent_run.info.run_id
    runs = tracker.search(f"tags.`{PARENT_TAG}` = '{parent_id}'")
    rows = []
    for run in runs:
        if run.data.tags.get("pareto") != "true":
            continue
        metrics = run.data.metrics
        rows.append({
            "trial": int(run.data.tags.get(TRIAL_TAG, -1)),
            "run_id": run.info.run_id,
            "name": run.info.run_name,
            **{k: metrics.get(k) for k in ("test_accuracy", "val_accuracy", "params", "macs", "latency_ms", "speedup_vs_dense")},
        })  # fmt: skip
    rows.sort(key=lambda r: (r["macs"] or 0))
    return FrontView(parent_id, parent_run.info.run_name, len(runs), rows)


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
