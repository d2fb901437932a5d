"""From a space file's settings to Optuna distributions and back: ranges on their step grid, fixed
values, the value that stands for a searched setting, and logged text read back into a value."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from ..config import Param, RatioRange
from ..config._space import TiltRange

__all__ = ["param_distribution", "parse_value", "ratio_distribution", "snap", "typical"]


def ratio_distribution(ratio: RatioRange | TiltRange | Mapping[str, Any]) -> FloatDistribution | float:
    low, high, step = (
        (ratio["low"], ratio["high"], ratio["step"])
        if isinstance(ratio, Mapping)
        else (ratio.low, ratio.high, ratio.step)
    )
    if high <= low:
        return float(low)
    if step is not None:
        high = low + math.floor((high - low) / step + 1e-9) * step  # keep high on the step grid
        return FloatDistribution(round(low, 10), round(high, 10), step=step) if high > low else float(low)
    return FloatDistribution(low, high)


def snap(value: float, low: float, high: float, step: float | None) -> float:
    """``value`` on the grid ``low + k * step`` (when there is a step), within [low, high]."""
    if step:
        value = low + round((value - low) / step) * step
    return round(min(max(value, low), high), 10)


def param_distribution(name: str, param: Param) -> BaseDistribution | Any:
    if param.value is not None:
        return int(param.value) if name == "epochs" else param.value
    if param.choices is not None:
        choices = [int(c) for c in param.choices] if name == "epochs" else list(param.choices)
        return choices[0] if len(choices) == 1 else CategoricalDistribution(choices)
    assert param.low is not None and param.high is not None  # guaranteed by Param's validation
    if param.low == param.high:
        return int(param.low) if name == "epochs" else param.low
    if name == "epochs":
        return IntDistribution(int(param.low), int(param.high), step=int(param.step or 1), log=param.log)
    return FloatDistribution(param.low, param.high, step=param.step, log=param.log)


def typical(name: str, param: Param) -> float | int | str:
    """One value standing for a setting: its fixed value, its first choice, or its range's middle."""
    if param.value is not None:
        return param.value
    if param.choices is not None:
        return param.choices[0]
    assert param.low is not None and param.high is not None  # guaranteed by Param's validation
    middle = math.sqrt(param.low * param.high) if param.log else (param.low + param.high) / 2
    if param.step:
        middle = param.low + round((middle - param.low) / param.step) * param.step
    return round(middle) if name == "epochs" else float(middle)


def parse_value(distribution: BaseDistribution, text: Any) -> Any:
    """A logged value read for ``distribution`` (a choice, or a number within its range); None when it
    does not fit."""
    if isinstance(distribution, CategoricalDistribution):
        return next((c for c in distribution.choices if c == text or str(c) == str(text)), None)
    try:
        number: float = int(float(text)) if isinstance(distribution, IntDistribution) else float(text)
    except (TypeError, ValueError):
        return None
    if isinstance(distribution, (FloatDistribution, IntDistribution)) and not (
        distribution.low <= number <= distribution.high
    ):
        return None
    return number
