"""The records the search hands to the layers above it: the objectives and how they become losses,
the dense reference, one trial's outcome (`TrialRecord`) and a finalized front member
(`FinalizedMember`). They are typed values (a `TrialState` enum, `Metric` names), not dicts of
strings, and each knows how it is stored: a trial's outcome in one study attribute, a member's
figures as the metrics its MLflow run carries."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .._vocab import OBJECTIVES, Metric, TrialState
from ..errors import ConfigError

__all__ = [
    "FRONT_PREFIX",
    "KEPT_PREFIX",
    "DenseReference",
    "FinalizedMember",
    "Objectives",
    "TrialRecord",
    "constraint_values",
]

KEPT_PREFIX = "kept."  # metric name prefix of the channels a trial keeps per group, as MLflow logs them
FRONT_PREFIX = "front."  # a front member's figures after its final fine-tune (and its recipe), as MLflow logs them
_OLD_PREFIX, _OLD_TEST = "final_", "test_accuracy"  # how runs logged them before 2026-12-07 (still read)


@dataclass(frozen=True)
class DenseReference:
    """The dense model's figures, for normalising and for constraints."""

    val_accuracy: float
    test_accuracy: float
    params: int
    macs: int
    size_bytes: int
    latency_ms: float

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}


class Objectives:
    """The 1–3 objectives of a pipeline (names as it writes them: ``accuracy``, ``macs``, ...).

    Latency is optimised as ``latency_ratio`` = pruned / dense latency measured interleaved in the
    same trial: on a shared machine the ratio is stable where absolute milliseconds drift.

    Raises:
        ConfigError: Not 1 to 3 known objectives.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        unknown = [name for name in self.names if name not in OBJECTIVES]
        if unknown or not 1 <= len(self.names) <= 3:
            raise ConfigError(f"must be 1 to 3 of {', '.join(OBJECTIVES)}, but got {self.names}", key="objectives")

    @property
    def metrics(self) -> list[Metric]:
        """The metric each objective reads (``val_accuracy``, ``macs``, ``latency_ratio``, ...)."""
        return [OBJECTIVES[name].metric for name in self.names]

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        return [OBJECTIVES[name].direction for name in self.names]

    @property
    def cost_metrics(self) -> list[Metric]:
        """The objectives' metrics other than accuracy (MACs when accuracy is the only one)."""
        return [m for m in self.metrics if m != Metric.VAL_ACCURACY] or [Metric.MACS]

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
            value = float(metrics[OBJECTIVES[name].metric])
            if name == "accuracy":
                losses.append(1.0 - value)
            elif name == "latency_ms":
                losses.append(value)  # already pruned / dense
            else:
                losses.append(value / float(getattr(dense, name)))
        return losses


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a study, as every strategy reports it: what was proposed (``params``) and what
    was measured (``metrics`` by `Metric` name, validation accuracy per fine-tune ``epochs``, channels
    ``kept`` per group, ``constraints`` as Optuna values, <= 0 feasible)."""

    number: int
    state: TrialState
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    epochs: list[float] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", TrialState(self.state))  # "complete" reads as TrialState.COMPLETE

    @property
    def feasible(self) -> bool:
        return self.state == TrialState.COMPLETE and all(value <= 0 for value in self.constraints.values())

    @property
    def finetune_skipped(self) -> bool:
        """Whether the trial was evaluated as pruned, without its fine-tune (its size broke a limit)."""
        return _finetune_skipped(self.metrics)

    def outcome(self) -> dict[str, Any]:
        """What a study stores of the trial's measurements (one JSON-able user attribute)."""
        return {
            "metrics": dict(self.metrics),
            "epochs": list(self.epochs),
            "kept": dict(self.kept),
            "error": self.error,
        }

    @classmethod
    def from_outcome(
        cls,
        number: int,
        state: TrialState,
        params: Mapping[str, Any],
        outcome: Mapping[str, Any],
        *,
        constraints: Mapping[str, float] | None = None,
        seconds: float = 0.0,
    ) -> TrialRecord:
        """The record of a stored `outcome` (missing parts empty)."""
        return cls(
            number=number,
            state=TrialState(state),
            params=dict(params),
            metrics={str(k): float(v) for k, v in dict(outcome.get("metrics") or {}).items()},
            epochs=[float(v) for v in outcome.get("epochs") or []],
            kept={str(k): int(v) for k, v in dict(outcome.get("kept") or {}).items()},
            constraints=dict(constraints or {}),
            error=outcome.get("error"),
            seconds=seconds,
        )

    @classmethod
    def failed(cls, number: int, params: Mapping[str, Any], error: str, *, seconds: float = 0.0) -> TrialRecord:
        return cls(number, TrialState.FAILED, dict(params), error=error, seconds=seconds)


def _finetune_skipped(metrics: Mapping[str, float]) -> bool:
    return metrics.get(Metric.FINETUNE_SKIPPED, 0.0) > 0


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
            drop = dense.val_accuracy - metrics[Metric.VAL_ACCURACY]
            values[name] = 0.0 if _finetune_skipped(metrics) else drop - limit
        else:
            metric = name.removeprefix("max_")
            values[name] = (metrics[metric] - limit) / (float(getattr(dense, metric)) or 1.0)
    return values


@dataclass(frozen=True)
class FinalizedMember:
    """A front member after its final fine-tune: its figures on the test split (accuracy, once) and
    as measured (validation accuracy, sizes, latency against the dense model's), the recipe of the
    final fine-tune, and where it was logged and registered."""

    trial: int
    test_accuracy: float
    val_accuracy: float
    params: int
    macs: int
    size_bytes: int
    latency_ms: float
    latency_ratio: float
    epochs: int
    lr: float
    distill_alpha: float
    ema_decay: float
    run_id: str = ""
    model_uri: str | None = None
    version: int | None = None
    aliases: tuple[str, ...] = ()
    compression: str = "fp32"  # how the deployable stores it: "int8", "16 shared values", ...

    _MEASURED: ClassVar[tuple[str, ...]] = ("val_accuracy", "params", "macs", "size_bytes", "latency_ms")
    _RECIPE: ClassVar[dict[str, float]] = {"epochs": 0, "lr": math.nan, "distill_alpha": 0.0, "ema_decay": 0.0}

    @property
    def speedup(self) -> float:
        return 1.0 / self.latency_ratio if self.latency_ratio > 0 else math.nan

    def metrics(self) -> dict[str, float]:
        """The figures as the member's MLflow run logs them (``front.test_accuracy``, ``front.macs``, ...),
        rounded as a person reads them: accuracies to 4 decimals, milliseconds to 4 significant digits,
        the speed-up to 3 decimals."""
        return {
            FRONT_PREFIX + "test_accuracy": round(self.test_accuracy, 4),
            FRONT_PREFIX + "val_accuracy": round(self.val_accuracy, 4),
            FRONT_PREFIX + "params": float(self.params),
            FRONT_PREFIX + "macs": float(self.macs),
            FRONT_PREFIX + "size_bytes": float(self.size_bytes),
            FRONT_PREFIX + "latency_ms": float(f"{self.latency_ms:.4g}"),
            FRONT_PREFIX + "speedup": round(self.speedup, 3),
        }

    @classmethod
    def metric_names(cls) -> list[str]:
        """The names `metrics` logs, in the order a person reads them."""
        return [FRONT_PREFIX + n for n in ("test_accuracy", "val_accuracy", *cls._MEASURED[1:], "speedup")]

    def recipe(self) -> dict[str, float | int]:
        """The final fine-tune's settings, as the member's run logs them (params ``front.epochs``, ...)."""
        return {FRONT_PREFIX + name: getattr(self, name) for name in self._RECIPE}

    @classmethod
    def from_metrics(
        cls, trial: int, metrics: Mapping[str, float], params: Mapping[str, str] | None = None, **where: Any
    ) -> FinalizedMember | None:
        """The member whose run logged ``metrics`` and ``params`` (`metrics`, `recipe`; or the names
        runs had before, ``final_macs`` and ``test_accuracy``), or None when they are incomplete."""
        new = FRONT_PREFIX + "test_accuracy" in metrics
        prefix, test = (FRONT_PREFIX, FRONT_PREFIX + "test_accuracy") if new else (_OLD_PREFIX, _OLD_TEST)
        speed = FRONT_PREFIX + "speedup" if new else _OLD_PREFIX + "latency_ratio"
        if any(metrics.get(name) is None for name in (test, speed, *(prefix + n for n in cls._MEASURED))):
            return None
        figures: dict[str, Any] = {name: float(metrics[prefix + name]) for name in cls._MEASURED}
        figures["latency_ratio"] = 1.0 / float(metrics[speed]) if new else float(metrics[speed])
        stored: dict[str, Any] = {**(params or {}), **metrics}
        for name, default in cls._RECIPE.items():
            figures[name] = float(stored.get(FRONT_PREFIX + name, stored.get(_OLD_PREFIX + name, default)))
        for whole in ("params", "macs", "size_bytes", "epochs"):
            figures[whole] = int(figures[whole])
        return cls(trial=trial, test_accuracy=float(metrics[test]), **figures, **where)

    def registered(self, version: int | None, aliases: Sequence[str]) -> FinalizedMember:
        """This member with the registry's version and aliases."""
        return dataclasses.replace(self, version=version, aliases=tuple(sorted(aliases)))
