"""Typed configuration of a search space: per-group pruning ratios and fine-tune settings.

A fine-tune setting is written as a fixed value (``lr: 0.01``), a list of choices
(``optimizer: [sgd, adamw]``) or a range (``lr: {low: 1e-4, high: 0.1, log: true}``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .._vocab import OPTIMIZERS, Importance
from ._base import Strict
from ._engine import MAX_CLUSTERS, FinetuneConfig

__all__ = [
    "CompressionSpace",
    "FinetuneSpace",
    "Param",
    "PruningSpace",
    "RatioOverride",
    "RatioRange",
    "SpaceConfig",
    "TiltRange",
]


def _check_range(low: float, high: float, step: float | None) -> None:
    """``low <= high``, and a ``step`` that fits in the range (else only ``low`` is ever tried)."""
    if low > high:
        raise ValueError(f"low <= high must hold, but got low={low}, high={high}")
    if step is not None and high > low and step > high - low + 1e-9:
        raise ValueError(f"step {step:g} is wider than the range {low:g} to {high:g}, so only {low:g} would be tried")


class Param(Strict):
    """One searchable setting: exactly one of ``value``, ``choices`` or ``low``/``high``."""

    value: float | int | str | None = None
    choices: list[float | int | str] | None = Field(None, min_length=1)
    low: float | None = None
    high: float | None = None
    step: float | None = Field(None, gt=0)
    log: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"choices": data}
        if isinstance(data, (int, float, str)) and not isinstance(data, bool):
            return {"value": data}
        return data

    @model_validator(mode="after")
    def _one_form(self) -> Param:
        is_range = self.low is not None or self.high is not None
        forms = [self.value is not None, self.choices is not None, is_range]
        if sum(forms) != 1:
            raise ValueError("write a fixed value, a list of choices, or a range {low, high}; exactly one of them")
        if is_range:
            if self.low is None or self.high is None:
                raise ValueError(f"a range needs both low and high, but got low={self.low}, high={self.high}")
            _check_range(self.low, self.high, self.step)
            if self.log and self.low <= 0:
                raise ValueError(f"a log range needs low > 0, but got low={self.low}")
            if self.log and self.step is not None:
                raise ValueError("a range cannot have both log: true and a step")
        elif self.step is not None or self.log:
            raise ValueError("step and log apply to ranges {low, high} only")
        return self

    @property
    def is_fixed(self) -> bool:
        return self.value is not None

    def extremes(self) -> list[float | int | str]:
        """The values that bound what this setting can take: the fixed value, every choice, or low and high."""
        if self.value is not None:
            return [self.value]
        if self.choices is not None:
            return list(self.choices)
        return [v for v in (self.low, self.high) if v is not None]


class RatioRange(Strict):
    """The range each group's pruning ratio is drawn from."""

    low: float = Field(0.0, ge=0, lt=1)
    high: float = Field(0.85, ge=0, lt=1)
    step: float | None = Field(0.05, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> RatioRange:
        _check_range(self.low, self.high, self.step)
        return self


class RatioOverride(Strict):
    """A partial `RatioRange` for the groups a glob matches."""

    low: float | None = Field(None, ge=0, lt=1)
    high: float | None = Field(None, ge=0, lt=1)
    step: float | None = Field(None, gt=0, lt=1)


class TiltRange(Strict):
    """The range of ``pruning.tilt``: how far the shared ratio leans from the first group to the last.

    A group's ratio is the shared ratio x (1 + tilt x position), the position running from -1 (the
    first group the model defines) to +1 (the last): tilt 0.5 prunes the first group at half the
    shared ratio and the last at 1.5 times it; a negative tilt keeps the late groups wider.
    """

    low: float = Field(-0.75, ge=-1, le=1)
    high: float = Field(0.75, ge=-1, le=1)
    step: float | None = Field(0.05, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> TiltRange:
        _check_range(self.low, self.high, self.step)
        return self


class PruningSpace(Strict):
    ratio: RatioRange = Field(default_factory=RatioRange)
    uniform: bool = Field(False, description="one ratio shared by all groups instead of one per group")
    spread: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="each group's ratio within this of one shared ratio (null: every group on its own)",
    )
    tilt: TiltRange | None = Field(
        None,
        description="lean the shared ratio with depth: ratio x (1 + tilt x position), position -1 (first group) .. "
        "+1 (last)",
    )
    overrides: dict[str, RatioOverride] = Field(default_factory=dict, description="glob on group names -> range")
    exclude: list[str] = Field(default_factory=list, description="globs of groups never pruned")
    importance: list[Importance] = Field(default_factory=lambda: list[Importance](["l1"]), min_length=1)
    round_to: int | None = Field(
        None, ge=1, description="keep every group's width a multiple of this (8: the blocks CPU kernels prefer)"
    )
    min_channels: int = Field(1, ge=1, description="never keep fewer channels than this in any group")

    def widths(self) -> dict[str, Any]:
        """How a plan of this space rounds its kept widths: `PrunePlan`'s ``round_to`` and ``min_channels``."""
        return {"round_to": self.round_to, "min_channels": self.min_channels}

    @field_validator("importance", mode="before")
    @classmethod
    def _single_importance(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("importance")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"importance criteria must be unique, but got {value}")
        return value

    @field_validator("spread")
    @classmethod
    def _spread_or_uniform(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("uniform"):
            raise ValueError(
                "uniform: true shares one ratio exactly; a spread around it needs uniform: false, but got "
                f"spread={value}"
            )
        return value

    @field_validator("tilt")
    @classmethod
    def _tilt_not_uniform(cls, value: TiltRange | None, info: ValidationInfo) -> TiltRange | None:
        if value is not None and info.data.get("uniform"):
            raise ValueError("uniform: true shares one ratio exactly; a tilt with depth needs uniform: false")
        return value


class FinetuneSpace(Strict):
    lr: Param = Field(default_factory=lambda: Param(value=0.01))
    epochs: Param = Field(default_factory=lambda: Param(value=2))
    weight_decay: Param = Field(default_factory=lambda: Param(value=5e-4))
    distill_alpha: Param = Field(default_factory=lambda: Param(value=0.0))
    temperature: Param = Field(default_factory=lambda: Param(value=4.0))
    label_smoothing: Param = Field(default_factory=lambda: Param(value=0.0))
    momentum: Param = Field(default_factory=lambda: Param(value=0.9))
    optimizer: Param = Field(default_factory=lambda: Param(value="sgd"))
    ema_decay: Param = Field(default_factory=lambda: Param(value=0.0))
    batch_size: int | None = Field(None, ge=1, description="defaults to data.batch_size")

    @field_validator(
        "lr", "epochs", "weight_decay", "distill_alpha", "temperature", "label_smoothing", "momentum", "ema_decay"
    )
    @classmethod
    def _within_bounds(cls, param: Param, info: ValidationInfo) -> Param:
        name = str(info.field_name)
        if name == "epochs":
            numbers = (
                [param.value, *(param.choices or [])] if param.low is None else [param.low, param.high, param.step]
            )
            if any(isinstance(v, float) and not v.is_integer() for v in numbers if v is not None) or param.log:
                raise ValueError(f"must be whole numbers (a range with a whole step, not log), but got {_show(param)}")
        for value in param.extremes():  # each must be a value a fine-tune accepts: FinetuneConfig's own rule
            if isinstance(value, str):
                raise ValueError(f"must be numbers, but got {_show(param)}")
            refused = FinetuneConfig.refusal(**{name: int(value) if name == "epochs" else value})
            if refused is not None:
                raise ValueError(f"values {refused.partition(', but got')[0]}, but got {_show(param)}")
        return param

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, param: Param) -> Param:
        return _one_of(param, OPTIMIZERS, "sgd or adamw")


def _one_of(param: Param, allowed: tuple[str, ...], said: str) -> Param:
    """``param`` when it is one of ``allowed`` or a list of them (never a range)."""
    if param.low is not None or any(option not in allowed for option in param.extremes()):
        raise ValueError(f"must be {said} (or a list of them), but got {_show(param)}")
    return param


def _show(param: Param) -> str:
    if param.value is not None:
        return repr(param.value)
    if param.choices is not None:
        return repr(param.choices)
    extras = (f", step: {param.step:g}" if param.step is not None else "") + (", log: true" if param.log else "")
    return f"{{low: {param.low:g}, high: {param.high:g}{extras}}}"


NONE = "none"


class CompressionSpace(Strict):
    """What shrinks each candidate after its fine-tune: ``quantize`` (none or int8) and
    ``weight_clusters`` (none, or shared values per layer), each a fixed value or a list of choices;
    ``epochs`` and ``lr`` of the shared values' fine-tune. YAML's null stands for none."""

    quantize: Param = Field(default_factory=lambda: Param(value=NONE))
    weight_clusters: Param = Field(default_factory=lambda: Param(value=NONE))
    epochs: int = Field(1, ge=0, le=1000, description="fine-tune epochs of the shared values")
    lr: float = Field(0.005, gt=0, le=10.0, description="learning rate of the shared values' fine-tune")

    @field_validator("quantize", "weight_clusters", mode="before")
    @classmethod
    def _null_is_none(cls, value: Any) -> Any:
        if value is None:
            return NONE
        return [NONE if v is None else v for v in value] if isinstance(value, list) else value

    @field_validator("quantize")
    @classmethod
    def _known_quantization(cls, param: Param) -> Param:
        return _one_of(param, (NONE, "int8"), "none or int8")

    @field_validator("weight_clusters")
    @classmethod
    def _cluster_counts(cls, param: Param) -> Param:
        options = param.extremes()
        whole = [o for o in options if o != NONE and isinstance(o, (int, float)) and float(o).is_integer()]
        if param.low is not None or len(whole) + options.count(NONE) != len(options):
            raise ValueError(f"must be none or whole numbers of shared values (a list of them), but got {_show(param)}")
        if any(not 2 <= o <= MAX_CLUSTERS for o in whole):
            raise ValueError(f"shared values per layer must be 2 to {MAX_CLUSTERS}, but got {_show(param)}")
        if len({str(o) for o in options}) != len(options):
            raise ValueError(f"choices must be unique, but got {_show(param)}")
        return param

    @property
    def searched(self) -> bool:
        """Whether compression is searched (a list of several choices) rather than fixed."""
        return any(p.choices is not None and len(p.choices) > 1 for p in (self.quantize, self.weight_clusters))

    @property
    def off(self) -> bool:
        """Whether no candidate is ever compressed."""
        return all(p.extremes() == [NONE] for p in (self.quantize, self.weight_clusters))


class SpaceConfig(Strict):
    """A search space file: ``pruning`` (ratios per group, importance), ``finetune`` settings and
    ``compression`` after the fine-tune."""

    pruning: PruningSpace = Field(default_factory=PruningSpace)
    finetune: FinetuneSpace = Field(default_factory=FinetuneSpace)
    compression: CompressionSpace = Field(default_factory=CompressionSpace)
