"""The Pareto scatter keeps the fine-tuned trials readable when trials over a size limit were not fine-tuned."""

from __future__ import annotations

from autoprune.search import Metric, TrialRecord
from autoprune.tracking._plots import pareto_figure


def _record(number: int, accuracy: float, macs: float, *, skipped: bool = False) -> TrialRecord:
    metrics = {"val_accuracy": accuracy, "macs": macs} | ({Metric.FINETUNE_SKIPPED: 1.0} if skipped else {})
    return TrialRecord(number, "complete", {}, metrics=metrics, constraints={"max_macs": macs - 50 if skipped else -1})


def test_trials_over_a_size_limit_are_marked_below_the_fine_tuned_ones() -> None:
    records = [
        _record(0, 0.90, 30),
        _record(1, 0.93, 40),
        _record(2, 0.12, 80, skipped=True),
        _record(3, 0.45, 90, skipped=True),
    ]
    axis = pareto_figure(records, {0, 1}, "macs", 100, "t").axes[0]
    low, high = axis.get_ylim()
    assert 0.85 < low < 0.90 and 0.93 < high < 0.95  # the range of the fine-tuned trials, not 0.12
    marked = next(c for c in axis.collections if c.get_label() == "over a size limit (not fine-tuned)")
    (x1, y1), (x2, y2) = marked.get_offsets()
    assert (x1, x2) == (80, 90) and y1 == y2 and low < y1 < 0.90  # at their MACs, along the bottom


def test_the_plot_title_counts_the_trials_run_not_skipped_twins() -> None:
    from autoprune.workflow._conclude import plot_title as _plot_title

    states = ["complete", "complete", "skipped", "failed", "complete", "skipped"]
    records = [TrialRecord(number, state, {}) for number, state in enumerate(states)]
    assert _plot_title("p", records, 2) == "p: 3 trials (1 failed), front of 2"
    assert _plot_title("p", records[:2], 1) == "p: 2 trials, front of 1"
