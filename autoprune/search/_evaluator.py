"""From sampled parameters to a `TrialRecord`: the search side of the one engine call, shared by
every strategy, and `TrialReporter`, the callback interface the tracking layer implements (the
search never imports MLflow)."""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from .._vocab import Metric, TrialState
from ..data import Splits
from ..engine import SIZE_METRICS, CandidateResult, EpochReport, MeasureConfig, evaluate_candidate
from ..errors import AutoPruneError
from ._records import KEPT_PREFIX, DenseReference, TrialRecord, constraint_values
from ._space import SearchSpace

__all__ = ["CandidateEvaluator", "NullReporter", "TrialReporter"]

log = logging.getLogger("autoprune")
_PACKAGE = Path(__file__).resolve().parents[1]  # autoprune/


class TrialReporter(Protocol):
    """What the search tells the tracking layer and the display. All methods must return quickly and
    never raise."""

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        """A trial of the study began with these (logged) parameters."""

    def epoch_finished(self, number: int, report: EpochReport) -> None:
        """Trial ``number`` finished a fine-tune epoch."""

    def trial_finished(self, record: TrialRecord) -> None:
        """A trial ended (complete or failed)."""

    def training_epoch(self, what: str, report: EpochReport) -> None:
        """An epoch of a training outside the trials (the one-shot supernet's, a final fine-tune's)."""

    def candidate_scored(self, record: TrialRecord, done: int, total: int) -> None:
        """A one-shot candidate was scored (``done`` of ``total``); it is not a trial of the study."""

    def candidates_done(self, records: Sequence[TrialRecord], front: Sequence[int]) -> None:
        """Every one-shot candidate scored, and the candidates on their front."""


class NullReporter:
    """A reporter that records nothing."""

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        pass

    def epoch_finished(self, number: int, report: EpochReport) -> None:
        pass

    def trial_finished(self, record: TrialRecord) -> None:
        pass

    def training_epoch(self, what: str, report: EpochReport) -> None:
        pass

    def candidate_scored(self, record: TrialRecord, done: int, total: int) -> None:
        pass

    def candidates_done(self, records: Sequence[TrialRecord], front: Sequence[int]) -> None:
        pass


def _raised_in_autoprune(exc: BaseException) -> bool:
    """Whether an unexpected exception was raised by autoprune's own code (a bug to report), rather
    than in torch, Torch-Pruning or the user's model, where a candidate can legitimately fail."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(_PACKAGE)


class CandidateEvaluator:
    """Parameters in, a `TrialRecord` out: the engine call plus bookkeeping, shared by all strategies.

    It holds everything that turns a candidate into a measured model: the model candidates are pruned
    from (``dense``; the supernet for the one-shot strategy) and the one they distil from (``teacher``,
    by default ``dense``), the splits, the space, how to measure, the dense reference and the
    constraints.
    """

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
        teacher: nn.Module | None = None,
    ) -> None:
        self.dense = dense
        self.teacher = teacher  # distil from this model (None: from ``dense``)
        self.splits = splits
        self.space = space
        self.measure = measure
        self.reference = reference
        self.constraints = dict(constraints)
        self.skip_over_limit = skip_over_limit

    def to(self, device: torch.device) -> CandidateEvaluator:
        """Move what candidates are made from (the dense model, the teacher, the splits' batches) to
        ``device``, in place (a Ray worker's own copy, say); returns itself."""
        self.dense.to(device)
        if self.teacher is not None:
            self.teacher.to(device)
        self.splits = self.splits.on(device)
        return self

    def over_limit(self, costs: Mapping[str, float]) -> list[str]:
        """The size constraints (params, MACs, bytes) that ``costs`` break, as ``params 26,559 >
        max_params 25,000``: the fine-tune cannot change them, so such a trial is infeasible already."""
        broken = []
        for metric in SIZE_METRICS:  # fixed by the architecture: known before the fine-tune
            limit = self.constraints.get(f"max_{metric}")
            if limit is not None and metric in costs and costs[metric] > limit:
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
        compressed = False

        def measured(result: CandidateResult) -> bool:
            costs = self.costs(result)
            if compressed:  # the deployable's bytes are known after compression, not from the fp32 model
                costs.pop(Metric.SIZE_BYTES)
            if on_measured is not None:
                on_measured({**costs, **{f"{KEPT_PREFIX}{group}": float(n) for group, n in result.kept.items()}})
            broken = self.over_limit(costs) if self.skip_over_limit else []
            if broken:
                log.info("trial %d is not fine-tuned: %s", number, ", ".join(broken))
            return bool(broken)

        try:
            candidate = self.space.candidate(params)
            compressed = candidate.compression.active
            result = evaluate_candidate(
                self.dense,
                candidate,
                self.splits,
                measure=self.measure,
                on_epoch=on_epoch,
                on_measured=measured,
                teacher=self.teacher,
            )
        except Exception as exc:  # a failing trial is recorded as failed; the search goes on
            return self._failed(number, params, exc, time.perf_counter() - start), None
        return self.record(number, params, result, seconds=time.perf_counter() - start), result

    def _failed(self, number: int, params: Mapping[str, Any], exc: Exception, seconds: float) -> TrialRecord:
        error = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, AutoPruneError) and _raised_in_autoprune(exc):
            log.warning(  # the search goes on, but this is ours to fix: show where
                "trial %d failed inside autoprune, which looks like a bug in autoprune (please report it):\n%s",
                number,
                "".join(traceback.format_exception(exc)),
            )
        else:
            log.info("trial %d failed: %s", number, error)  # the record carries it; the CLI's progress shows it
            log.debug("trial %d traceback:\n%s", number, "".join(traceback.format_exception(exc)))
        return TrialRecord.failed(number, params, error, seconds=seconds)

    def record(self, number: int, params: Mapping[str, Any], result: CandidateResult, *, seconds: float) -> TrialRecord:
        """The record of a measured candidate (failed when a metric the search reads is not finite)."""
        metrics = {**result.metrics(), **self.costs(result)}
        metrics[Metric.ENGINE_SECONDS] = sum(result.seconds.values())  # prune + fine-tune + evaluate + measure
        if result.status == "skipped":
            metrics[Metric.FINETUNE_SKIPPED] = 1.0
        if not all(math.isfinite(metrics.get(m, math.nan)) for m in (Metric.VAL_ACCURACY, Metric.LATENCY_RATIO)):
            return TrialRecord.failed(number, params, "the candidate produced non-finite metrics", seconds=seconds)
        return TrialRecord(
            number,
            TrialState.COMPLETE,
            dict(params),
            metrics={str(name): float(value) for name, value in metrics.items()},
            epochs=list(result.val_accuracy_per_epoch),
            kept=dict(result.kept),
            constraints=constraint_values(self.constraints, metrics, self.reference),
            seconds=seconds,
        )

    def costs(self, result: CandidateResult) -> dict[str, float]:
        """The cost metrics of a measured candidate: ``latency_ratio`` (pruned / dense, measured side
        by side) and ``latency_ms`` as the dense reference's latency times that ratio, the figure the
        closing table, the aliases and every view of the front use (the candidate's own milliseconds
        drift with the machine's load from one measurement to the next)."""
        ratio = result.latency_ms / result.dense_latency_ms
        return {
            Metric.PARAMS: float(result.params),
            Metric.MACS: float(result.macs),
            Metric.SIZE_BYTES: float(result.size_bytes),
            Metric.LATENCY_MS: float(self.reference.latency_ms * ratio),
            Metric.LATENCY_RATIO: ratio,
        }
