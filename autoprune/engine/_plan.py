"""`PrunePlan`: a JSON-serialisable record of how much to prune each dependency group.

A plan names groups by string and holds only numbers, so it can be sampled by a search, logged as
MLflow params, written to YAML/JSON and replayed: applying the same plan to the same dense weights
gives the same pruned model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .._vocab import IMPORTANCES
from ..errors import PruningError

__all__ = ["IMPORTANCES", "PrunePlan"]


def _check_ratio(name: str, ratio: float, what: str = "ratio") -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio < 1.0:
        raise PruningError(f"the {what} of group '{name}' must be in [0, 1), but got {ratio!r}", key=name)


@dataclass(frozen=True)
class PrunePlan:
    """How many channels to remove from each dependency group.

    Attributes:
        ratios: Fraction of each group's channels to remove, in [0, 1). Groups not listed keep all
            channels (unless ``threshold`` is set).
        keep: Exact number of channels to keep per group; wins over ``ratios`` for the same group.
        threshold: Threshold mode. For every group not in ``ratios``/``keep``, remove the channels whose
            importance divided by the group's largest importance is below this value.
        importance: How channels are ranked: one of ``IMPORTANCES``.
        round_to: Round kept channel counts to a multiple of this (hardware-friendly widths).
        min_channels: Never keep fewer channels than this in any group.
        seed: Seed for the ``random`` criterion.
        order: Each group's channels from most to least important, fixed beforehand (nested channels of
            a one-shot supernet): a group listed here keeps its first channels in this order, whatever
            the criterion says.
    """

    ratios: Mapping[str, float] = field(default_factory=dict)
    keep: Mapping[str, int] = field(default_factory=dict)
    threshold: float | None = None
    importance: str = "l1"
    round_to: int | None = None
    min_channels: int = 1
    seed: int = 0
    order: Mapping[str, Sequence[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratios", {str(k): float(v) for k, v in dict(self.ratios).items()})
        object.__setattr__(self, "keep", dict(self.keep))
        object.__setattr__(self, "order", {str(k): [int(c) for c in v] for k, v in dict(self.order).items()})
        for name, ratio in self.ratios.items():
            _check_ratio(name, ratio)
        for name, count in self.keep.items():
            if isinstance(count, bool) or not isinstance(count, int):
                raise PruningError(f"the keep count of group '{name}' must be an integer, but got {count!r}", key=name)
            if count < 1:
                raise PruningError(
                    f"The 'keep' count of group '{name}' must be >= 1: keeping {count} channels would leave "
                    "the layer with no channels.",
                    key=name,
                )
        if self.threshold is not None and not 0.0 <= self.threshold < 1.0:
            raise PruningError(f"the threshold must be in [0, 1), but got {self.threshold!r}", key="threshold")
        if self.importance not in IMPORTANCES:
            raise PruningError(
                f"the importance must be one of {', '.join(IMPORTANCES)}, but got {self.importance!r}",
                key="importance",
            )
        if self.round_to is not None and self.round_to < 1:
            raise PruningError(f"round_to must be >= 1 or null, but got {self.round_to!r}", key="round_to")
        if self.min_channels < 1:
            raise PruningError(
                f"The 'min_channels' must be >= 1: {self.min_channels} would allow layers with no channels.",
                key="min_channels",
            )

    @classmethod
    def uniform(cls, groups: Iterable[Any], ratio: float, **options: Any) -> PrunePlan:
        """The same ratio for every group (``groups`` are `Group` objects or names)."""
        names = [getattr(group, "name", group) for group in groups]
        return cls(ratios=dict.fromkeys(names, ratio), **options)

    def kept_channels(self, name: str, size: int, normalised_importance: Any = None, *, blocks: int = 1) -> int:
        """How many of a group's ``size`` channels this plan keeps.

        ``normalised_importance`` (importance / max importance, per channel) is needed only in
        threshold mode for groups not listed in ``ratios`` or ``keep``. ``blocks`` (`Group.blocks`): every
        block keeps the same number, so the count is a multiple of it (an exact ``keep`` included). The
        count is rounded half up to a multiple of ``round_to`` and ``blocks`` both, ``min_channels`` is
        met in whole such steps, and a step that does not divide ``size`` may round up to all of it:
        the count a plan gives is the count it replays to.
        """
        wanted = self._wanted(name, size, normalised_importance)
        if wanted is None:
            return size
        step = math.lcm(self.round_to or 1, blocks)
        if step > 1:
            wanted = step * max(1, int(wanted / step + 0.5))
        floor = step * math.ceil(min(self.min_channels, size) / step)
        return max(1, min(size, max(wanted, floor)))

    def _wanted(self, name: str, size: int, normalised_importance: Any) -> int | None:
        if name in self.keep:
            return min(self.keep[name], size)
        if name in self.ratios:
            return size - math.floor(size * self.ratios[name] + 1e-9)
        if self.threshold is not None and normalised_importance is not None:
            return int((normalised_importance >= self.threshold).sum())
        return None

    def resolved(self, kept: Mapping[str, int]) -> PrunePlan:
        """The same plan with every group's outcome pinned as an exact ``keep`` count.

        A resolved plan rebuilds the pruned architecture without the dense weights or the data
        (threshold and taylor plans depend on both), which is what `load_pruned` needs.
        """
        return PrunePlan(keep=dict(kept), importance=self.importance, min_channels=1, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratios"] = dict(self.ratios)
        data["keep"] = dict(self.keep)
        data["order"] = {name: list(channels) for name, channels in self.order.items()}
        if not data["order"]:
            del data["order"]  # plans without a fixed order read as they always did
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrunePlan:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise PruningError(f"unknown prune plan field(s): {', '.join(sorted(unknown))}")
        return cls(**dict(data))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PrunePlan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PruningError(f"a prune plan must be a JSON object: {exc}") from exc
        if not isinstance(data, dict):
            raise PruningError("a prune plan must be a JSON object")
        return cls.from_dict(data)
