"""Pareto scatter plots and the hypervolume curve (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..search import TrialRecord

__all__ = ["front_csv", "hypervolume_figure", "pareto_figure"]

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


def pareto_figure(records: Sequence[TrialRecord], front: set[int], cost: str, dense_cost: float, title: str) -> Any:
    """Validation accuracy against one cost: feasible trials, infeasible ones, and the front as a step
    line. Trials over a size limit (not fine-tuned) are marked along the bottom at their cost only."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    done = [r for r in records if r.state == "complete"]
    feasible = [r for r in done if r.feasible and r.number not in front]
    infeasible = [r for r in done if not r.feasible and not r.finetune_skipped]
    over_limit = [r for r in done if r.finetune_skipped]  # evaluated as pruned: no fine-tune
    members = sorted((r for r in done if r.number in front), key=lambda r: r.metrics[cost])
    axis.scatter(
        [r.metrics[cost] for r in feasible],
        [r.metrics["val_accuracy"] for r in feasible],
        s=22,
        c="#9aa5b1",
        label="trial",
    )
    if infeasible:
        axis.scatter(
            [r.metrics[cost] for r in infeasible],
            [r.metrics["val_accuracy"] for r in infeasible],
            s=22,
            marker="x",
            c="#d64545",
            label="breaks a constraint",
        )
    tuned = [r.metrics["val_accuracy"] for r in done if not r.finetune_skipped]
    if over_limit and tuned:  # drawn along the bottom: their un-fine-tuned accuracy would squash the rest
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
    xs = [r.metrics[cost] for r in members]
    ys = [r.metrics["val_accuracy"] for r in members]
    axis.step(xs, ys, where="post", c="#1f6feb", lw=1.2, alpha=0.6)
    axis.scatter(xs, ys, s=46, c="#1f6feb", edgecolors="black", linewidths=0.6, label="Pareto front", zorder=3)
    for record, x, y in zip(members, xs, ys):
        axis.annotate(f"t{record.number}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axis.axvline(dense_cost, c="black", ls=":", lw=1, label="dense model")
    axis.set_xlabel(_LABELS.get(cost, cost))
    axis.set_ylabel("validation accuracy")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure


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


def front_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows (dicts with the same keys) as CSV text."""
    import csv
    import io

    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
