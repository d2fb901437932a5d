"""The one call every trial makes: prune → fine-tune → evaluate → measure."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import CompressionConfig
from ..data import Splits, TensorSplit
from ._compress import Compressed, compress, onnx_accuracy
from ._evaluate import Evaluation, evaluate
from ._finetune import EpochCallback, FinetuneConfig, FinetuneHistory, finetune
from ._latency_table import LatencyTable
from ._measure import (
    LatencyConfig,
    count_macs,
    count_params,
    measure_latency,
    measure_train_throughput,
    size_bytes,
)
from ._plan import PrunePlan
from ._prune import apply_plan

__all__ = ["Candidate", "CandidateResult", "MeasureConfig", "evaluate_candidate", "evaluate_deployed", "measure_into"]

TAYLOR_BATCHES = 4


@dataclass(frozen=True)
class Candidate:
    """What a search proposes: how to prune, how to fine-tune afterwards, and how to compress the
    fine-tuned model for deployment."""

    plan: PrunePlan
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)


@dataclass(frozen=True)
class MeasureConfig:
    """What to measure besides params/MACs/bytes and torch latency (interleaved with the dense model)."""

    latency: LatencyConfig = field(default_factory=LatencyConfig)
    onnx_latency: bool = False
    train_throughput: bool = False
    table: LatencyTable | None = field(default=None, compare=False)  # predict latency instead of measuring it


_NAN = float("nan")


@dataclass
class CandidateResult:
    """Everything measured about one candidate. ``status`` is ``ok``, ``stopped`` (early), ``skipped``
    (not fine-tuned: evaluated as pruned) or ``failed``."""

    status: str = "ok"
    val_accuracy: float = _NAN
    val_loss: float = _NAN
    val_accuracy_per_epoch: list[float] = field(default_factory=list)
    params: int = 0
    macs: int = 0
    size_bytes: int = 0
    latency_ms: float = _NAN
    dense_latency_ms: float = _NAN
    onnx_latency_ms: float | None = None
    dense_onnx_latency_ms: float | None = None
    train_samples_per_s: float | None = None
    dense_train_samples_per_s: float | None = None
    dense_params: int = 0
    dense_macs: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    model: nn.Module | None = field(default=None, repr=False, compare=False)
    compressed: Compressed | None = field(default=None, repr=False, compare=False)  # the deployable, if compressed
    fp32_val_accuracy: float | None = None  # before compression

    @property
    def speedup_vs_dense(self) -> float:
        return self.dense_latency_ms / self.latency_ms if self.latency_ms and self.latency_ms > 0 else _NAN

    @property
    def macs_ratio(self) -> float:
        """Pruned MACs / dense MACs (1.0 = nothing saved)."""
        return self.macs / self.dense_macs if self.dense_macs else _NAN

    @property
    def params_ratio(self) -> float:
        return self.params / self.dense_params if self.dense_params else _NAN

    @classmethod
    def failed(cls, error: str, **known: Any) -> CandidateResult:
        return cls(status="failed", error=error, **known)

    def metrics(self) -> dict[str, float]:
        """Finite scalar metrics, named as they are logged."""
        values: dict[str, float | int | None] = {
            "val_accuracy": self.val_accuracy,
            "val_loss": self.val_loss,
            "params": self.params,
            "macs": self.macs,
            "size_bytes": self.size_bytes,
            "latency_ms": self.latency_ms,
            "dense_latency_ms": self.dense_latency_ms,
            "speedup_vs_dense": self.speedup_vs_dense,
            "macs_ratio": self.macs_ratio,
            "params_ratio": self.params_ratio,
            "onnx_latency_ms": self.onnx_latency_ms,
            "train_samples_per_s": self.train_samples_per_s,
            "dense_train_samples_per_s": self.dense_train_samples_per_s,
            "epochs_run": len(self.val_accuracy_per_epoch),
            "fp32_val_accuracy": self.fp32_val_accuracy,  # compressed: val_accuracy is the deployable's
        }
        return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}


def evaluate_candidate(
    dense: nn.Module,
    candidate: Candidate,
    splits: Splits,
    *,
    measure: MeasureConfig = MeasureConfig(),
    on_epoch: EpochCallback | None = None,
    on_measured: Callable[[CandidateResult], bool | None] | None = None,
    teacher: nn.Module | None = None,
) -> CandidateResult:
    """Prune a copy of ``dense`` with ``candidate.plan``, measure its costs, fine-tune it (distilling
    from ``teacher``, by default ``dense``, when ``distill_alpha > 0``) and evaluate it on the
    validation split.

    Costs are measured right after pruning (they depend on the architecture, not on the weights), so
    ``on_measured`` can pass them on before a possibly long fine-tune, and an early-stopped trial still
    has them. When ``on_measured`` returns True the fine-tune is skipped (a candidate whose size
    already rules it out): the pruned model is evaluated as it is and ``status`` is ``skipped``.
    ``dense`` is never modified. Errors (`PruningError`, `TrialDiverged`, ...) propagate:
    the search decides how to record them.
    """
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    model = copy.deepcopy(dense)
    batches = None
    if candidate.plan.importance == "taylor":
        batches = list(splits.train.batches(splits.batch_size))[:TAYLOR_BATCHES]
    outcome = apply_plan(model, candidate.plan, splits.input_shape, batches=batches)
    seconds["prune"] = time.perf_counter() - clock

    clock = time.perf_counter()
    result = CandidateResult(kept=outcome.kept, model=model)
    measure_into(result, dense, model, splits, measure)
    seconds["measure"] = time.perf_counter() - clock
    skip = on_measured is not None and bool(on_measured(result))

    clock = time.perf_counter()
    history = FinetuneHistory()
    if not skip:
        distil = (dense if teacher is None else teacher) if candidate.finetune.distill_alpha > 0 else None
        history = finetune(model, splits, candidate.finetune, teacher=distil, on_epoch=on_epoch)
    seconds["finetune"] = time.perf_counter() - clock

    clock = time.perf_counter()
    if history.epochs:
        result.val_accuracy, result.val_loss = history.epochs[-1].val_accuracy, history.epochs[-1].val_loss
    else:
        val = evaluate(model, splits.val)
        result.val_accuracy, result.val_loss = val.accuracy, val.loss
    seconds["evaluate"] = time.perf_counter() - clock
    result.status = "skipped" if skip else "stopped" if history.stopped_early else "ok"
    result.val_accuracy_per_epoch = [report.val_accuracy for report in history.epochs]
    if candidate.compression.active and not skip:
        clock = time.perf_counter()
        _compress_into(result, model, dense, splits, candidate, measure)
        seconds["compress"] = time.perf_counter() - clock
    result.model = model.eval()
    result.seconds = seconds
    return result


def _compress_into(
    result: CandidateResult,
    model: nn.Module,
    dense: nn.Module,
    splits: Splits,
    candidate: Candidate,
    measure: MeasureConfig,
) -> None:
    """Compress the fine-tuned ``model`` (see `compress`) and make ``result`` the deployable's: its
    validation accuracy, its bytes and, for int8, its onnxruntime latency beside the dense model's."""
    compressed = compress(
        model, dense, splits, candidate.compression, recipe=candidate.finetune, latency=measure.latency
    )
    result.compressed = compressed
    result.fp32_val_accuracy = result.val_accuracy
    result.val_accuracy, result.val_loss = compressed.val_accuracy, compressed.val_loss
    result.size_bytes = compressed.size_bytes
    if compressed.latency_ms is not None and compressed.dense_latency_ms is not None:
        result.latency_ms, result.dense_latency_ms = compressed.latency_ms, compressed.dense_latency_ms


def evaluate_deployed(result: CandidateResult, splits: Splits, split: TensorSplit) -> Evaluation:
    """A candidate's accuracy on ``split`` (one of ``splits``) as deployed: its int8 file's in
    onnxruntime when it was quantized, else its model's."""
    if result.compressed is not None and result.compressed.kind == "onnx-int8":
        accuracy, loss = onnx_accuracy(result.compressed.data, splits, split)
        return Evaluation(accuracy, loss, len(split))
    assert result.model is not None
    return evaluate(result.model, split)


def measure_into(
    result: CandidateResult, dense: nn.Module, model: nn.Module, splits: Splits, measure: MeasureConfig
) -> None:
    """Fill ``result`` with the costs of ``model`` and of ``dense``: params, MACs, bytes, latency side by side
    (and ONNX latency, training throughput when ``measure`` asks)."""
    shape = splits.input_shape
    result.params, result.dense_params = count_params(model), count_params(dense)
    result.macs, result.dense_macs = count_macs(model, shape), count_macs(dense, shape)
    result.size_bytes = size_bytes(model)
    pair = {"dense": dense, "pruned": model}
    if measure.table is not None:
        result.latency_ms = measure.table.predict(model, shape)
        result.dense_latency_ms = measure.table.predict(dense, shape)
    else:
        latency = measure_latency(pair, shape, measure.latency)
        result.latency_ms, result.dense_latency_ms = latency["pruned"], latency["dense"]
    if measure.onnx_latency:
        onnx_config = measure.latency.replace(runtime="onnxruntime")
        onnx = measure_latency(pair, shape, onnx_config)
        result.onnx_latency_ms, result.dense_onnx_latency_ms = onnx["pruned"], onnx["dense"]
    if measure.train_throughput:
        batch = torch.arange(min(len(splits.train), splits.batch_size))  # in the layout training uses
        throughput = measure_train_throughput(
            pair, splits.train.rows(batch), splits.train.labels(batch), batch_size=splits.batch_size
        )
        result.train_samples_per_s = throughput["pruned"]
        result.dense_train_samples_per_s = throughput["dense"]
