"""`FitToLimit`: scale a plan's ratios by one factor so the pruned model fills size limits.

A search under ``max_params: 25000`` wastes trials twice: on plans over the limit (infeasible however
well they train) and on plans far under it (feasible, but they threw away capacity the budget allows).
Fitting keeps the plan's *shape* (which groups are pruned harder than which) and solves for *how much*:
every ratio times one factor, each capped at its group's highest ratio, the factor as small as it can
be while the pruned model's params, MACs and bytes stay within their limits. Params, MACs and bytes
depend only on the channels each group keeps, so they are counted on a pruned copy of the dense model
once per distinct channel count and cached.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace

from torch import nn

from ._groups import Group
from ._measure import count_macs, count_params, size_bytes
from ._plan import PrunePlan
from ._prune import apply_plan

__all__ = ["SIZE_METRICS", "FitToLimit"]

SIZE_METRICS = ("params", "macs", "size_bytes")
_STEPS = 40  # bisection steps on the factor: far finer than one channel of any group


class FitToLimit:
    """Fits plans to size limits (see the module docstring).

    Args:
        model: The dense model (never modified; copies are pruned).
        input_shape: Shape of one input (C, H, W).
        groups: The model's dependency groups.
        limits: The size limits to fill, by metric (``params``, ``macs``, ``size_bytes``); others are ignored.
        caps: The highest ratio each searched group may reach; groups not listed are never pruned by the fit.

    Raises:
        ValueError: No size limit is given.
    """

    def __init__(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        groups: Sequence[Group],
        limits: Mapping[str, float],
        caps: Mapping[str, float],
    ) -> None:
        self.limits = {metric: float(limits[metric]) for metric in SIZE_METRICS if limits.get(metric) is not None}
        if not self.limits:
            raise ValueError(f"fitting a plan needs a limit on one of {', '.join(SIZE_METRICS)}")
        self.model = model
        self.input_shape = tuple(int(d) for d in input_shape)
        self.sizes = {group.name: group.size for group in groups}
        self.blocks = {group.name: group.blocks for group in groups}
        self.caps = {name: float(cap) for name, cap in caps.items() if cap > 0}
        self._costs: dict[tuple[int, ...], dict[str, int]] = {}

    def costs(self, kept: Mapping[str, int]) -> dict[str, int]:
        """Params, MACs and bytes of the dense model with each group cut to ``kept`` channels."""
        counts = {name: min(int(kept.get(name, size)), size) for name, size in self.sizes.items()}
        key = tuple(counts.values())
        if key not in self._costs:
            pruned = copy.deepcopy(self.model)
            keep = {name: count for name, count in counts.items() if count < self.sizes[name]}
            apply_plan(pruned, PrunePlan(keep=keep), self.input_shape)
            self._costs[key] = {
                "params": count_params(pruned),
                "macs": count_macs(pruned, self.input_shape),
                "size_bytes": size_bytes(pruned),
            }
        return self._costs[key]

    def fits(self, plan: PrunePlan) -> bool:
        """Whether ``plan``'s pruned model is within every limit."""
        costs = self.costs(self.kept(plan))
        return all(costs[metric] <= limit for metric, limit in self.limits.items())

    def __call__(self, plan: PrunePlan) -> PrunePlan:
        """``plan`` with its ratios scaled to fill the limits; the scaled plan at its caps when even
        they break a limit (the search records that as over the limit), no pruning when the dense
        model is within them. A plan that prunes nothing is fitted as a uniform one."""
        shape = {name: plan.ratios.get(name, 0.0) for name in self.caps}
        if not any(shape.values()):
            shape = dict.fromkeys(self.caps, 1.0)
        top = max((self.caps[name] / ratio for name, ratio in shape.items() if ratio > 0), default=0.0)
        if top == 0.0:
            return plan  # no group may be pruned
        if self.fits(self._scaled(plan, shape, 0.0)):
            return self._exact(plan, shape, 0.0)
        if not self.fits(self._scaled(plan, shape, top)):
            return self._exact(plan, shape, top)
        low, high = 0.0, top  # low breaks a limit, high keeps them all
        for _ in range(_STEPS):
            middle = (low + high) / 2
            low, high = (low, middle) if self.fits(self._scaled(plan, shape, middle)) else (middle, high)
        return self._exact(plan, shape, high)

    def _scaled(self, plan: PrunePlan, shape: Mapping[str, float], factor: float) -> PrunePlan:
        ratios = {name: min(ratio * factor, self.caps[name]) for name, ratio in shape.items()}
        return replace(plan, ratios={**plan.ratios, **ratios})

    def _exact(self, plan: PrunePlan, shape: Mapping[str, float], factor: float) -> PrunePlan:
        """The scaled plan with each ratio written as the share of channels it removes (``13 / 32 =
        0.40625`` rather than ``0.4137...``): the same channels kept, a plan that reads and replays cleanly."""
        kept = self.kept(self._scaled(plan, shape, factor))
        ratios = {
            name: (size - kept[name]) / size
            for name, size in self.sizes.items()
            if name in plan.ratios or name in shape
        }
        return replace(plan, ratios={name: ratio for name, ratio in ratios.items() if ratio > 0})

    def kept(self, plan: PrunePlan) -> dict[str, int]:
        """The channels ``plan`` keeps in each group."""
        return {name: plan.kept_channels(name, size, blocks=self.blocks[name]) for name, size in self.sizes.items()}
