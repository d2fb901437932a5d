"""Pareto scatter plots and the hypervolume curve (matplotlib, headless)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..search import FinalizedMember, Metric, TrialRecord, TrialState

__all__ = ["candidates_csv", "front_csv", "hypervolume_figure", "pareto_figure"]

_LABELS = {
    "params": "parameters",
    "macs": "MACs (one input)",
    "size_bytes": "serialized bytes",
    "latency_ratio": "latency / dense latency",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pareto_figure(
    records: Sequence[TrialRecord],
    front: set[int],
    cost: str,
    dense_cost: float,
    title: str,
    *,
    what: str = "trial",
    labels: bool = True,
) -> Any:
    """Validation accuracy against one cost: feasible trials (or one-shot candidates: ``what``),
    infeasible ones, and the front as a step line, its points labelled with their numbers unless
    ``labels`` is off. Trials over a size limit (not fine-tuned) are marked along the bottom at their
    cost only."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    done = [r for r in records if r.state == TrialState.COMPLETE]
    feasible = [r for r in done if r.feasible and r.number not in front]
    infeasible = [r for r in done if not r.feasible and not r.finetune_skipped]
    over_limit = [r for r in done if r.finetune_skipped]  # evaluated as pruned: no fine-tune
    members = sorted((r for r in done if r.number in front), key=lambda r: r.metrics[cost])
    axis.scatter(
        [r.metrics[cost] for r in feasible],
        [r.metrics[Metric.VAL_ACCURACY] for r in feasible],
        s=22 if labels else 8,
        c="#9aa5b1",
        label=what,
    )
    if infeasible:
        axis.scatter(
            [r.metrics[cost] for r in infeasible],
            [r.metrics[Metric.VAL_ACCURACY] for r in infeasible],
            s=22,
            marker="x",
            c="#d64545",
            label="breaks a constraint",
        )
    _draw_over_limit(axis, done, over_limit, cost)
    xs = [r.metrics[cost] for r in members]
    ys = [r.metrics[Metric.VAL_ACCURACY] for r in members]
    axis.step(xs, ys, where="post", c="#1f6feb", lw=1.2, alpha=0.6)
    axis.scatter(xs, ys, s=46, c="#1f6feb", edgecolors="black", linewidths=0.6, label="Pareto front", zorder=3)
    for record, x, y in zip(members, xs, ys) if labels else ():
        axis.annotate(f"t{record.number}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if math.isfinite(dense_cost):
        axis.axvline(dense_cost, c="black", ls=":", lw=1, label="dense model")
    axis.set_xlabel(_LABELS.get(cost, cost))
    axis.set_ylabel("validation accuracy")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure


def _draw_over_limit(axis: Any, done: Sequence[TrialRecord], over_limit: Sequence[TrialRecord], cost: str) -> None:
    """Trials over a size limit along the bottom: their un-fine-tuned accuracy would squash the rest."""
    tuned = [r.metrics[Metric.VAL_ACCURACY] for r in done if not r.finetune_skipped]
    if not over_limit or not tuned:
        return
    low, high = min(tuned), max(tuned)
    margin = max(0.01, 0.08 * (high - low))
    axis.set_ylim(low - 2 * margin, high + margin)
    axis.scatter(
        [r.metrics[cost] for r in over_limit],
        [low - 1.4 * margin] * len(over_limit),
        s=26,
        marker="v",
        facecolors="none",
        edgecolors="#d9822b",
        label="over a size limit (not fine-tuned)",
    )


def hypervolume_figure(history: Sequence[tuple[int, float]], title: str) -> Any:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    axis.plot([n for n, _ in history], [v for _, v in history], marker=".", c="#1f6feb")
    axis.set_xlabel("trial")
    axis.set_ylabel("hypervolume (normalised)")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def candidates_csv(records: Sequence[TrialRecord], front: set[int]) -> str:
    """One-shot candidates as CSV text: number, state, calibrated validation accuracy, sizes, latency
    ratio, whether feasible and on the front, the channels kept per group and the sampled parameters."""
    import csv
    import io

    groups = sorted({name for record in records for name in record.kept})
    params = sorted({name for record in records for name in record.params})
    figures = [Metric.VAL_ACCURACY, Metric.PARAMS, Metric.MACS, Metric.SIZE_BYTES, Metric.LATENCY_RATIO]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["candidate", "state", *figures, "feasible", "on_front", *(f"kept.{g}" for g in groups), *params])
    for r in sorted(records, key=lambda r: r.number):
        values = [r.metrics.get(m, "") for m in figures]
        kept = [r.kept.get(g, "") for g in groups]
        writer.writerow(
            [r.number, r.state, *values, r.feasible, r.number in front, *kept, *(r.params.get(p, "") for p in params)]
        )
    return buffer.getvalue()


def front_csv(members: Sequence[FinalizedMember]) -> str:
    """The finalized members as CSV text: trial, run, registry version and aliases, their figures."""
    import csv
    import io

    if not members:
        return ""
    rows: list[Mapping[str, Any]] = [
        {
            "trial": m.trial,
            "run_id": m.run_id,
            "version": m.version if m.version is not None else "",
            "aliases": ",".join(m.aliases),
            "model_uri": m.model_uri or "",
            **m.metrics(),
            **m.recipe(),
        }
        for m in members
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
