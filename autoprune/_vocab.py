"""Names shared by the configuration, the engine, the search, tracking and the display, defined once
(no heavy imports here): the metrics a candidate is measured by, the states of a trial, the
objectives and the closed vocabularies of the configuration."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

__all__ = [
    "DEVICE_PATTERN",
    "IMPORTANCES",
    "OBJECTIVES",
    "OPTIMIZERS",
    "PRECISIONS",
    "RUNTIMES",
    "SAMPLERS",
    "STRATEGIES",
    "Importance",
    "Metric",
    "Objective",
    "Optimizer",
    "Precision",
    "Runtime",
    "Sampler",
    "Strategy",
    "TrialState",
    "duration",
]

Importance = Literal["l1", "l2", "bn_scale", "taylor", "random"]
Optimizer = Literal["sgd", "adamw"]
Precision = Literal["fp32", "bf16", "fp16"]
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?|mps"  # a pipeline's ``device``
Runtime = Literal["torch", "onnxruntime"]
Sampler = Literal["tpe", "nsga2", "random", "qmc"]
Strategy = Literal["trials", "oneshot"]

IMPORTANCES: tuple[str, ...] = get_args(Importance)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
PRECISIONS: tuple[str, ...] = get_args(Precision)
RUNTIMES: tuple[str, ...] = get_args(Runtime)
SAMPLERS: tuple[str, ...] = get_args(Sampler)
STRATEGIES: tuple[str, ...] = get_args(Strategy)


DEPLOYABLE_FILES = {"onnx-int8": "model.int8.onnx", "shared": "model.shared"}  # a compressed model, by kind


class Metric(StrEnum):
    """What a candidate is measured by, named as the study stores it and MLflow logs it."""

    VAL_ACCURACY = "val_accuracy"
    VAL_LOSS = "val_loss"
    FP32_VAL_ACCURACY = "fp32_val_accuracy"  # a compressed candidate's accuracy before compression
    PARAMS = "params"
    MACS = "macs"
    SIZE_BYTES = "size_bytes"
    LATENCY_MS = "latency_ms"
    LATENCY_RATIO = "latency_ratio"  # pruned / dense latency, measured side by side
    DENSE_LATENCY_MS = "dense_latency_ms"
    SPEEDUP = "speedup_vs_dense"
    MACS_RATIO = "macs_ratio"
    PARAMS_RATIO = "params_ratio"
    ONNX_LATENCY_MS = "onnx_latency_ms"
    TRAIN_SAMPLES_PER_S = "train_samples_per_s"
    DENSE_TRAIN_SAMPLES_PER_S = "dense_train_samples_per_s"
    EPOCHS_RUN = "epochs_run"
    ENGINE_SECONDS = "engine_seconds"
    FINETUNE_SKIPPED = "finetune_skipped"  # 1.0: not fine-tuned because its size broke a constraint
    STOPPED_EARLY = "stopped_early"  # 1.0: a scheduler (ASHA) stopped its fine-tune
    CALIBRATED = "calibrated"  # 1.0: scored by BatchNorm-recalibrated accuracy (one-shot), not fine-tuned


class TrialState(StrEnum):
    """Where a trial of a study stands (a `StrEnum`: its members compare equal to their names)."""

    COMPLETE = "complete"
    FAILED = "failed"
    RUNNING = "running"
    SKIPPED = "skipped"  # a duplicate proposal, or one the budget had no room for
    WAITING = "waiting"

    @property
    def finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.FAILED)


@dataclass(frozen=True)
class Objective:
    """One objective a pipeline may name: the metric the search reads and its direction."""

    metric: Metric
    direction: Literal["maximize", "minimize"]

    @property
    def short(self) -> Literal["max", "min"]:
        """The direction as a pipeline writes it (``accuracy: max``)."""
        return "max" if self.direction == "maximize" else "min"


# objective name (as a pipeline writes it) -> the metric it reads. Latency is optimised as the ratio
# to the dense model's, measured side by side: on a shared machine the ratio is stable where
# absolute milliseconds drift.
OBJECTIVES: dict[str, Objective] = {
    "accuracy": Objective(Metric.VAL_ACCURACY, "maximize"),
    "params": Objective(Metric.PARAMS, "minimize"),
    "macs": Objective(Metric.MACS, "minimize"),
    "size_bytes": Objective(Metric.SIZE_BYTES, "minimize"),
    "latency_ms": Objective(Metric.LATENCY_RATIO, "minimize"),
}


def duration(seconds: float, decimals: int = 0) -> str:
    """A duration as a person reads it: minutes from 90 s on, seconds (to ``decimals`` places) below."""
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.{decimals}f} s"
