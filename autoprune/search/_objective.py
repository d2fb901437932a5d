"""From sampled parameters to objective values: the search side of the one engine call.

`Objectives` says which metrics are optimised and how they are turned into minimisation losses for
fronts and hypervolumes; `TrialRecord` is what every backend reports about a finished trial;
`TrialReporter` is the callback interface the tracking layer implements (search never imports MLflow).
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import nn

from ..data import Splits
from ..engine import SIZE_METRICS, CandidateResult, EpochReport, MeasureConfig, evaluate_candidate
from ._space import SearchSpace

__all__ = [
    "KEPT_PREFIX",
    "SKIPPED_METRIC",
    "CandidateEvaluator",
    "DenseReference",
    "NullReporter",
    "Objectives",
    "TrialRecord",
    "TrialReporter",
    "constraint_values",
]

log = logging.getLogger("autoprune")

KEPT_PREFIX = "kept."  # metric name prefix of the channels a trial keeps per group, as MLflow logs them
SKIPPED_METRIC = "finetune_skipped"  # 1.0 for a trial not fine-tuned because its size broke a constraint

# objective name -> (CandidateResult metric used as the search value, direction)
_VALUE_METRIC = {
    "accuracy": ("val_accuracy", "maximize"),
    "params": ("params", "minimize"),
    "macs": ("macs", "minimize"),
    "size_bytes": ("size_bytes", "minimize"),
    "latency_ms": ("latency_ratio", "minimize"),
}


@dataclass(frozen=True)
class DenseReference:
    """The dense model's figures, for normalising and for constraints."""

    val_accuracy: float
    test_accuracy: float
    params: int
    macs: int
    size_bytes: int
    latency_ms: float


class Objectives:
    """The 1–3 objectives of a pipeline.

    Latency is optimised as ``latency_ratio`` = pruned / dense latency measured interleaved in the
    same trial: on a shared machine the ratio is stable where absolute milliseconds drift.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        unknown = [name for name in self.names if name not in _VALUE_METRIC]
        if unknown or not 1 <= len(self.names) <= 3:
            raise ValueError(f"objectives must be 1 to 3 of {', '.join(_VALUE_METRIC)}, but got {self.names}")

    @property
    def metrics(self) -> list[str]:
        """The metric each objective reads (``val_accuracy``, ``macs``, ``latency_ratio``, ...)."""
        return [_VALUE_METRIC[name][0] for name in self.names]

    @property
    def directions(self) -> list[str]:
        return [_VALUE_METRIC[name][1] for name in self.names]

    def values(self, metrics: Mapping[str, float]) -> list[float]:
        """Objective values in the study's directions."""
        return [float(metrics[metric]) for metric in self.metrics]

    def losses(self, metrics: Mapping[str, float], dense: DenseReference) -> list[float]:
        """Normalised minimisation vector: 1 - accuracy, and costs as a fraction of the dense model's.

        With reference point (1, ..., 1) — zero accuracy, the dense model's cost — the hypervolume of a
        front is the share of that box it dominates.
        """
        losses = []
        for name in self.names:
            metric = _VALUE_METRIC[name][0]
            value = float(metrics[metric])
            if name == "accuracy":
                losses.append(1.0 - value)
            elif name == "latency_ms":
                losses.append(value)  # already pruned / dense
            else:
                losses.append(value / float(getattr(dense, name)))
        return losses


@dataclass
class TrialRecord:
    """One finished (or failed) trial, as every backend reports it."""

    number: int
    state: str  # "complete" | "failed" | "running"
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    epochs: list[float] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    @property
    def feasible(self) -> bool:
        return self.state == "complete" and all(value <= 0 for value in self.constraints.values())

    @property
    def finetune_skipped(self) -> bool:
        """Whether the trial was evaluated as pruned, without its fine-tune (its size broke a limit)."""
        return _finetune_skipped(self.metrics)


class TrialReporter(Protocol):
    """What the search tells the tracking layer. All methods must return quickly and never raise."""

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None: ...

    def epoch_finished(self, number: int, report: EpochReport) -> None: ...

    def trial_finished(self, record: TrialRecord) -> None: ...


class NullReporter:
    """A reporter that records nothing."""

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        pass

    def epoch_finished(self, number: int, report: EpochReport) -> None:
        pass

    def trial_finished(self, record: TrialRecord) -> None:
        pass


def _finetune_skipped(metrics: Mapping[str, float]) -> bool:
    return metrics.get(SKIPPED_METRIC, 0.0) > 0


def constraint_values(
    constraints: Mapping[str, float], metrics: Mapping[str, float], dense: DenseReference
) -> dict[str, float]:
    """Optuna-style constraint values (<= 0 is feasible) for a pipeline's active constraints, in one
    unit: the samplers rank infeasible trials by the sum of the positive values, so a limit counted in
    MACs must not drown one counted in accuracy. A size or latency value is the distance from its limit
    as a share of the dense model's figure (0.01: 1% of the dense MACs over); the accuracy drop's is
    already a share (0.01: one point over). A trial left un-fine-tuned because its size broke a limit
    (``finetune_skipped``) has no accuracy worth judging, so its accuracy-drop value is 0, not counted:
    the samplers rank it by how far its size breaks the limits, as they would had it been fine-tuned."""
    values = {}
    for name, limit in constraints.items():
        if name == "max_accuracy_drop":
            drop = dense.val_accuracy - metrics["val_accuracy"]
            values[name] = 0.0 if _finetune_skipped(metrics) else drop - limit
        else:
            metric = name.removeprefix("max_")
            values[name] = (metrics[metric] - limit) / (float(getattr(dense, metric)) or 1.0)
    return values


class CandidateEvaluator:
    """Parameters in, a `TrialRecord` out: the engine call plus bookkeeping, shared by all backends."""

    def __init__(
        self,
        dense: nn.Module,
        splits: Splits,
        space: SearchSpace,
        *,
        measure: MeasureConfig,
        reference: DenseReference,
        constraints: Mapping[str, float],
        skip_over_limit: bool = True,
    ) -> None:
        self.dense = dense
        self.splits = splits
        self.space = space
        self.measure = measure
        self.reference = reference
        self.constraints = dict(constraints)
        self.skip_over_limit = skip_over_limit

    def over_limit(self, costs: Mapping[str, float]) -> list[str]:
        """The size constraints (params, MACs, bytes) that ``costs`` break, as ``params 26,559 >
        max_params 25,000``: the fine-tune cannot change them, so such a trial is infeasible already."""
        broken = []
        for metric in SIZE_METRICS:  # fixed by the architecture: known before the fine-tune
            limit = self.constraints.get(f"max_{metric}")
            if limit is not None and costs[metric] > limit:
                broken.append(f"{metric} {costs[metric]:,.0f} > max_{metric} {limit:,.0f}")
        return broken

    def __call__(
        self,
        number: int,
        params: Mapping[str, Any],
        on_epoch: Callable[[EpochReport], bool | None] | None = None,
        on_measured: Callable[[dict[str, float]], None] | None = None,
    ) -> tuple[TrialRecord, CandidateResult | None]:
        """Evaluate the candidate of ``params``; ``on_measured`` receives its cost metrics (named as
        the objectives read them) and the channels it keeps (``kept.<group>``) right after pruning,
        before the fine-tune. A candidate that breaks a size constraint is not fine-tuned when
        ``skip_over_limit`` is on (its record's metrics say ``finetune_skipped``)."""
        start = time.perf_counter()

        def measured(result: CandidateResult) -> bool:
            costs = self.costs(result)
            if on_measured is not None:
                on_measured({**costs, **{f"{KEPT_PREFIX}{group}": float(n) for group, n in result.kept.items()}})
            broken = self.over_limit(costs) if self.skip_over_limit else []
            if broken:
                log.info("trial %d is not fine-tuned: %s", number, ", ".join(broken))
            return bool(broken)

        try:
            result = evaluate_candidate(
                self.dense,
                self.space.candidate(params),
                self.splits,
                measure=self.measure,
                on_epoch=on_epoch,
                on_measured=measured,
            )
        except Exception as exc:  # a failing trial is recorded as failed; the search goes on
            error = f"{type(exc).__name__}: {exc}"
            log.info("trial %d failed: %s", number, error)  # the record carries it; the CLI's progress shows it
            log.debug("trial %d traceback:\n%s", number, traceback.format_exc())
            return TrialRecord(number, "failed", dict(params), error=error, seconds=time.perf_counter() - start), None
        metrics = {**result.metrics(), **self.costs(result)}
        metrics["engine_seconds"] = sum(result.seconds.values())  # prune + fine-tune + evaluate + measure
        if result.status == "skipped":
            metrics[SKIPPED_METRIC] = 1.0
        if not all(math.isfinite(metrics.get(m, math.nan)) for m in ("val_accuracy", "latency_ratio")):
            error = "the candidate produced non-finite metrics"
            return TrialRecord(number, "failed", dict(params), error=error, seconds=time.perf_counter() - start), None
        record = TrialRecord(
            number,
            "complete",
            dict(params),
            metrics=metrics,
            epochs=list(result.val_accuracy_per_epoch),
            kept=dict(result.kept),
            constraints=constraint_values(self.constraints, metrics, self.reference),
            seconds=time.perf_counter() - start,
        )
        return record, result

    @staticmethod
    def costs(result: CandidateResult) -> dict[str, float]:
        """The cost metrics of a measured candidate, ``latency_ratio`` included."""
        return {
            "params": float(result.params),
            "macs": float(result.macs),
            "size_bytes": float(result.size_bytes),
            "latency_ms": float(result.latency_ms),
            "latency_ratio": result.latency_ms / result.dense_latency_ms,
        }
