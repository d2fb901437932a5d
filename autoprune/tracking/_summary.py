"""What the parent run of a search shows: its inputs, the dense reference, the front and its plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..search import DenseReference, FinalizedMember, TrialRecord, TrialState
from ._client import Tracker
from ._plots import front_csv, hypervolume_figure, pareto_figure
from ._reporter import readable

__all__ = ["PARENT_DESCRIPTION", "log_search_inputs", "log_summary"]

PARENT_DESCRIPTION = """\
**autoprune search** `{name}`: {trials} trials, each a structurally pruned and fine-tuned copy of the dense model.

How to pick a model:
1. In this experiment's run list, filter with `tags.pareto = "true"` and expand this search's row (+):
   the runs left are the Pareto front of {objectives} on the validation split (`pareto_rank` 2, 3, ...
   tags the next layers; `infeasible` broke a constraint).
2. Select them and press *Compare*, or open the chart view and plot `val_accuracy` against `macs` or `latency_ms`.
3. Each front run has `test_accuracy` (held-out split, measured once), the pruned model (`model`), its ONNX file and
   the replayable prune plan under `pruned/`.
4. The registered model `{model}` has one version per front member and the aliases `champion`, `smallest`,
   `fastest`, `most-accurate`: load one with `mlflow.pytorch.load_model("models:/{model}@champion")`.

This run's artifacts: `front.csv`, `pareto_*.png`, `hypervolume.png`, the pipeline and search space files.
"""


def log_search_inputs(
    tracker: Tracker,
    parent: str,
    *,
    pipeline_text: str,
    space_text: str | None,
    resolved_space: Mapping[str, Any],
    dense: DenseReference,
    settings: Mapping[str, Any],
) -> None:
    tracker.log_text(parent, pipeline_text, "pipeline.yaml")
    if space_text is not None:
        tracker.log_text(parent, space_text, "search_space.yaml")
    tracker.log_dict(parent, resolved_space, "resolved_space.json")
    figures = readable({f"dense_{k}": v for k, v in dense.as_dict().items()}, drop=frozenset())
    tracker.log(parent, metrics=figures, params=settings)


def log_summary(
    tracker: Tracker,
    parent: str,
    *,
    records: Sequence[TrialRecord],
    front: Sequence[int],
    cost_metrics: Sequence[str],
    dense: DenseReference,
    hypervolume: Sequence[tuple[int, float]],
    members: Sequence[FinalizedMember],
    title: str,
) -> None:
    on_front = set(front)
    dense_costs = {**dense.as_dict(), "latency_ratio": 1.0}
    for cost in cost_metrics:
        figure = pareto_figure(records, on_front, cost, dense_costs.get(cost, 1.0), title)
        tracker.log_figure(parent, figure, f"pareto_{cost}.png")
        figure.clf()
    if hypervolume:
        figure = hypervolume_figure(hypervolume, title)
        tracker.log_figure(parent, figure, "hypervolume.png")
        figure.clf()
        logged = {m.step for m in tracker.client.get_metric_history(parent, "hypervolume")}
        for number, value in hypervolume:
            if number not in logged:  # a resumed search adds only its new trials' points
                tracker.log_metric(parent, "hypervolume", value, step=number)
    tracker.log_text(parent, front_csv(members), "front.csv")
    completed = sum(r.state == TrialState.COMPLETE for r in records)
    failed = sum(r.state == TrialState.FAILED for r in records)
    tracker.log(
        parent,
        metrics={"front_size": len(front), "trials_completed": completed, "trials_failed": failed},
    )
