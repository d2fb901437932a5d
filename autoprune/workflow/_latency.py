"""``latency.mode: table``: the pipeline's latency table, fitted on this run's dense model, and how well
it agreed with the front members' measured latency."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import nn

from .. import engine
from ..config import PipelineConfig, PruningSpace
from ..search import FinalizedMember, Metric, TrialRecord
from ._locations import cache_dir

if TYPE_CHECKING:
    from ..tracking import Tracker

__all__ = ["check_table", "fitted_table", "latency_table"]

log = logging.getLogger("autoprune")
CALIBRATION_RATIOS = (0.25, 0.5, 0.75)  # uniform prunings measured whole to fit the table's scale and constant


def latency_table(config: PipelineConfig, dense: nn.Module, input_shape: Sequence[int]) -> engine.LatencyTable:
    """The table kept beside the store for this machine and runtime, fitted by `fitted_table`."""
    device = engine.device_of(dense)
    path = cache_dir(config) / f"latency-{engine.machine_key(config.latency, device)}.json"
    empty = engine.LatencyTable(config.latency, path, device)
    table = fitted_table(empty, dense, input_shape, config.search.space.pruning)
    table.save()
    log.info(
        "latency table %s: %d layer entries (%d measured now); latency = %.3f x the layers' sum + %.3f ms",
        path.name,
        len(table.entries),
        table.measured,
        table.scale,
        table.constant,
    )
    return table


def fitted_table(
    table: engine.LatencyTable,
    dense: nn.Module,
    input_shape: Sequence[int],
    pruning: PruningSpace | None = None,
) -> engine.LatencyTable:
    """``table`` with its scale and constant fitted on the dense model and uniform prunings of it
    (`CALIBRATION_RATIOS`) measured whole, their widths rounded as the search's candidates are
    (``pruning``'s ``round_to`` and ``min_channels``; none without it): widths off the kernels'
    multiples run slower than their layers suggest, so a fit on other widths than the candidates'
    would misjudge them (BENCHMARKS.md, the latency table)."""
    groups = engine.discover(dense, input_shape)
    widths = pruning.widths() if pruning is not None else {}
    models = [dense]
    for ratio in CALIBRATION_RATIOS:
        pruned = copy.deepcopy(dense)
        engine.apply_plan(pruned, engine.PrunePlan.uniform(groups, ratio, **widths), input_shape)
        models.append(pruned.eval())
    table.fit(models, input_shape)
    return table


def check_table(
    tracker: Tracker, parent: str, records: Sequence[TrialRecord], members: Sequence[FinalizedMember]
) -> tuple[float, float]:
    """The front members' latency relative to the dense model's as the table predicted it (what the
    search optimised) against the same ratio measured by finalize, the member beside the dense model:
    Spearman's rank correlation and the median relative error, logged on the search's run as
    ``latency_table.rank_correlation`` and ``latency_table.median_error``. Ratios, not milliseconds:
    on a shared machine a millisecond figure drifts by tens of percent from one second to the next,
    which measuring side by side cancels."""
    by_number = {r.number: r for r in records}
    predicted = {
        str(m.trial): by_number[m.trial].metrics[Metric.LATENCY_RATIO]
        for m in members
        if m.trial in by_number and Metric.LATENCY_RATIO in by_number[m.trial].metrics
    }
    measured = {str(m.trial): m.latency_ratio for m in members}
    correlation, error = engine.rank_agreement(predicted, measured)
    log.info("latency table on the front: rank correlation %.2f, median error %.1f%%", correlation, 100 * error)
    metrics = {"latency_table.rank_correlation": correlation, "latency_table.median_error": error}
    tracker.log(parent, metrics={k: v for k, v in metrics.items() if math.isfinite(v)})  # NaN: undefined
    return correlation, error
