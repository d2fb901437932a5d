"""`SearchSpace`: the space file resolved against a model's dependency groups.

It turns a `SpaceConfig` into Optuna distributions (one ratio per group, or one shared ratio; the
importance criterion; fine-tune settings) and turns sampled parameters back into a `Candidate`.
Parameter names are the ones logged to MLflow: ``ratio.<group>`` (or ``ratio`` and, with
``pruning.spread``, ``offset.<group>``; with ``pruning.tilt``, ``tilt``), ``importance``, ``lr``, ...
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from .._vocab import Precision
from ..config import Param, SpaceConfig
from ..engine import Candidate, CompressionConfig, FinetuneConfig, Group, PrunePlan
from ..errors import ConfigError, ModelError
from ._distributions import param_distribution, parse_value, ratio_distribution, snap, typical

__all__ = ["FINETUNE_PARAMS", "RATIO_PREFIX", "SearchSpace"]

RATIO_PREFIX = "ratio."
OFFSET_PREFIX = "offset."  # pruning.spread: a group's ratio = the shared ratio + its offset
FITTED_PREFIX = "fitted."  # search.fit_to_limit: the ratio a group was pruned at once its plan was fitted
TILT = "tilt"  # pruning.tilt: a group's ratio = the shared ratio x (1 + tilt x its position, -1 .. +1)
_ADDED_OFF = {("ema_decay", 0.0)}  # (setting, value) of fine-tune settings newer than the first studies
FINETUNE_PARAMS = (
    "lr",
    "epochs",
    "weight_decay",
    "distill_alpha",
    "temperature",
    "label_smoothing",
    "momentum",
    "optimizer",
    "ema_decay",
)
COMPRESSION_PARAMS = ("quantize", "weight_clusters")  # parameters only when the space compresses
_KEY = "search.space"


class SearchSpace:
    """A space file bound to a model's groups.

    Args:
        config: The parsed space.
        groups: The dense model's dependency groups.
        batch_size: Fine-tune batch size when the space does not set one.
        train_fraction: Share of the training split each trial fine-tunes on.
        seed: Seed for fine-tuning and the random criterion.
        fit: Applied to every candidate's plan (``search.fit_to_limit``: an `engine.FitToLimit` that
            scales the ratios to fill the size limits); ``None`` leaves plans as sampled.

    Raises:
        ConfigError: An override or exclude glob matches no group, or every group is excluded.
    """

    def __init__(
        self,
        config: SpaceConfig,
        groups: Sequence[Group],
        *,
        batch_size: int = 128,
        train_fraction: float = 1.0,
        seed: int = 0,
        fit: Callable[[PrunePlan], PrunePlan] | None = None,
        precision: Precision = "fp32",
    ) -> None:
        self.config = config
        self.fit = fit
        self.order: dict[str, list[int]] = {}  # nested channels (one-shot): each group keeps its first ones
        self.groups = list(groups)
        self.batch_size = config.finetune.batch_size or batch_size
        self.train_fraction = train_fraction
        self.precision: Precision = precision
        self.seed = seed
        names = [group.name for group in self.groups]
        if not names:
            raise ModelError(
                "the model has no prunable dependency group (no conv/linear layer whose outputs can shrink)",
                key="model",
            )
        self.excluded = self._match_all(config.pruning.exclude, names, "exclude")
        self.searched = [name for name in names if name not in self.excluded]
        if not self.searched:
            raise ConfigError(
                f"every group is excluded; the model's groups are {', '.join(names)}", key=f"{_KEY}.pruning.exclude"
            )
        self._group_ranges: dict[str, tuple[float, float, float | None]] = {}  # spread or tilt: (low, high, step)
        last = len(self.searched) - 1  # pruning.tilt: each group's position, -1 (first) .. +1 (last)
        self._positions = {name: 2 * index / last - 1 if last else 0.0 for index, name in enumerate(self.searched)}
        self._distributions, self._fixed = self._build(names)

    @staticmethod
    def _match_all(globs: Sequence[str], names: Sequence[str], what: str) -> set[str]:
        matched: set[str] = set()
        for index, pattern in enumerate(globs):
            hits = set(fnmatch.filter(names, pattern))
            if not hits:
                raise ConfigError(
                    f"{pattern!r} matches no group; the model's groups are {', '.join(names)}",
                    key=f"{_KEY}.pruning.{what}.{index}",
                )
            matched |= hits
        return matched

    def _ratio_range(self, name: str) -> dict[str, Any]:
        ratio = self.config.pruning.ratio.model_dump()
        for pattern, override in self.config.pruning.overrides.items():
            if fnmatch.fnmatch(name, pattern):
                ratio.update({k: v for k, v in override.model_dump().items() if v is not None})
        if ratio["low"] > ratio["high"]:
            raise ConfigError(
                f"low <= high must hold for group '{name}' after overrides, but got low={ratio['low']}, "
                f"high={ratio['high']}",
                key=f"{_KEY}.pruning.overrides",
            )
        return ratio

    def _build(self, names: Sequence[str]) -> tuple[dict[str, BaseDistribution], dict[str, Any]]:
        for pattern in self.config.pruning.overrides:
            if not fnmatch.filter(names, pattern):
                raise ConfigError(
                    f"{pattern!r} matches no group; the model's groups are {', '.join(names)}",
                    key=f"{_KEY}.pruning.overrides.{pattern}",
                )
        entries: dict[str, Any] = {}
        pruning = self.config.pruning
        if pruning.uniform:
            entries["ratio"] = ratio_distribution(pruning.ratio)
        elif pruning.spread is not None or pruning.tilt is not None:
            entries["ratio"] = ratio_distribution(pruning.ratio)
            if pruning.tilt is not None:
                entries[TILT] = ratio_distribution(pruning.tilt)
            step = pruning.ratio.step
            for name in self.searched:
                if pruning.spread is not None:
                    reach = pruning.spread if step is None else math.floor(pruning.spread / step + 1e-9) * step
                    entries[OFFSET_PREFIX + name] = ratio_distribution({"low": -reach, "high": reach, "step": step})
                own = ratio_distribution(self._ratio_range(name))  # overrides applied, high on the grid
                self._group_ranges[name] = (own, own, None) if isinstance(own, float) else (own.low, own.high, own.step)
        else:
            for name in self.searched:
                entries[RATIO_PREFIX + name] = ratio_distribution(self._ratio_range(name))
        importance = self.config.pruning.importance
        entries["importance"] = importance[0] if len(importance) == 1 else CategoricalDistribution(list(importance))
        for name in FINETUNE_PARAMS:
            entries[name] = param_distribution(name, getattr(self.config.finetune, name))
        if not self.config.compression.off:  # else no parameter: studies begun before compression still resume
            for name in COMPRESSION_PARAMS:
                entries[name] = param_distribution(name, getattr(self.config.compression, name))
        distributions = {k: v for k, v in entries.items() if isinstance(v, BaseDistribution)}
        fixed = {k: v for k, v in entries.items() if not isinstance(v, BaseDistribution)}
        return distributions, fixed

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        """What the sampler searches, by parameter name."""
        return dict(self._distributions)

    @property
    def fixed(self) -> dict[str, Any]:
        """Settings that are not searched (single values), by parameter name."""
        return dict(self._fixed)

    def candidate(self, params: Mapping[str, Any]) -> Candidate:
        """The candidate for sampled ``params`` (fixed settings filled in, the plan fitted when the
        space has a ``fit``)."""
        values = {**self._fixed, **params}
        plan = PrunePlan(
            ratios={name: ratio for name, ratio in self._ratios(values).items() if ratio > 0},
            importance=str(values["importance"]),
            seed=self.seed,
            **self.config.pruning.widths(),
        )
        if self.fit is not None:
            plan = self.fit(plan)
        if self.order:
            plan = dataclasses.replace(plan, order=self.order)
        finetune = FinetuneConfig(
            epochs=int(values["epochs"]),
            lr=float(values["lr"]),
            optimizer=str(values["optimizer"]),
            momentum=float(values["momentum"]),
            weight_decay=float(values["weight_decay"]),
            label_smoothing=float(values["label_smoothing"]),
            distill_alpha=float(values["distill_alpha"]),
            temperature=float(values["temperature"]),
            ema_decay=float(values["ema_decay"]),
            batch_size=self.batch_size,
            train_fraction=self.train_fraction,
            seed=self.seed,
            precision=self.precision,
        )
        return Candidate(plan, finetune, self._compression(values))

    def _compression(self, values: Mapping[str, Any]) -> CompressionConfig:
        clusters = values.get("weight_clusters", "none")
        return CompressionConfig(
            quantize=str(values.get("quantize", "none")),
            weight_clusters=None if clusters == "none" else int(clusters),
            epochs=self.config.compression.epochs,
            lr=self.config.compression.lr,
        )

    def logged_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """What a trial logs: the fixed settings, its sampled ``params`` and, when plans are fitted to a
        size limit, the ratio each group was pruned at (``fitted.<group>``, 4 decimals)."""
        logged = {**self._fixed, **params}
        if self.fit is not None:
            ratios = self.candidate(params).plan.ratios
            logged.update({FITTED_PREFIX + name: round(ratios.get(name, 0.0), 4) for name in self.searched})
        return logged

    def _ratios(self, values: Mapping[str, Any]) -> dict[str, float]:
        """Each searched group's ratio: the shared one; the shared one leant by the tilt and plus the
        group's offset (kept within the group's range and on the step grid); or the group's own."""
        pruning = self.config.pruning
        if pruning.uniform:
            return {name: float(values["ratio"]) for name in self.searched}
        if not self._group_ranges:
            return {name: float(values[RATIO_PREFIX + name]) for name in self.searched}
        leant = self._leant(float(values["ratio"]), float(values.get(TILT, 0.0)))
        return {
            name: snap(leant[name] + float(values.get(OFFSET_PREFIX + name, 0.0)), *self._group_ranges[name])
            for name in self.searched
        }

    def _leant(self, shared: float, tilt: float) -> dict[str, float]:
        """The shared ratio leant with depth: ``shared x (1 + tilt x position)`` per searched group."""
        return {name: shared * (1 + tilt * position) for name, position in self._positions.items()}

    def smallest_plan(self) -> PrunePlan:
        """Every searched group at the highest ratio the space allows: the smallest reachable model."""
        return self._plan_at(highest=True)

    def largest_plan(self) -> PrunePlan:
        """Every searched group at the lowest ratio the space allows: the widest candidate."""
        return self._plan_at(highest=False)

    def _plan_at(self, *, highest: bool) -> PrunePlan:
        ratios: dict[str, float] = {}
        for name in self.searched:
            if self._group_ranges:  # the shared ratio at its end, every offset too
                low, high, _ = self._group_ranges[name]
                ratios[name] = high if highest else low
                continue
            key = "ratio" if self.config.pruning.uniform else RATIO_PREFIX + name
            value = self._distributions.get(key, self._fixed.get(key, 0.0))
            if isinstance(value, (FloatDistribution, IntDistribution)):
                value = value.high if highest else value.low
            ratios[name] = float(value or 0.0)
        return PrunePlan(
            ratios={name: ratio for name, ratio in ratios.items() if ratio > 0},
            order=self.order,
            **self.config.pruning.widths(),
        )

    def with_order(self, order: Mapping[str, Sequence[int]]) -> SearchSpace:
        """This space with nested channels: every candidate keeps each group's first channels in ``order``."""
        nested = copy.copy(self)
        nested.order = {name: [int(c) for c in channels] for name, channels in order.items()}
        return nested

    def plans_only(self) -> SearchSpace:
        """This space with only the pruning plan searched (one criterion, every fine-tune setting at one
        value): what the one-shot strategy proposes, since a calibrated score says nothing of a fine-tune.
        A searched setting takes its typical value (a range's middle, geometric for a log range; a
        list's first choice). Compression has one value here (the pipeline's validation says so)."""
        finetune = {name: Param(value=typical(name, getattr(self.config.finetune, name))) for name in FINETUNE_PARAMS}
        pruning = self.config.pruning.model_copy(update={"importance": self.config.pruning.importance[:1]})
        config = self.config.model_copy(
            update={"pruning": pruning, "finetune": self.config.finetune.model_copy(update=finetune)}
        )
        plans = SearchSpace(
            config,
            self.groups,
            batch_size=self.batch_size,
            train_fraction=self.train_fraction,
            seed=self.seed,
            precision=self.precision,
        )
        plans.fit, plans.order = self.fit, self.order
        return plans

    def params_of(self, candidate: Candidate) -> dict[str, Any]:
        """The searched parameters that reproduce ``candidate`` (for enqueueing known candidates)."""
        ratios = dict(candidate.plan.ratios)
        values: dict[str, Any] = {"importance": candidate.plan.importance}
        if self.config.pruning.uniform:
            values["ratio"] = max(ratios.values(), default=0.0)
        elif self._group_ranges:
            values.update(self._shared_params({name: ratios.get(name, 0.0) for name in self.searched}))
        else:
            values.update({RATIO_PREFIX + name: ratios.get(name, 0.0) for name in self.searched})
        values.update({name: getattr(candidate.finetune, name) for name in FINETUNE_PARAMS})
        values["quantize"] = candidate.compression.quantize
        values["weight_clusters"] = candidate.compression.weight_clusters or "none"
        return {name: value for name, value in values.items() if name in self._distributions}

    def _shared_params(self, ratios: Mapping[str, float]) -> dict[str, float]:
        """The shared ratio (midway between the extremes; with a tilt, the mean, the tilt fitted by
        least squares) and the offsets, on their grids, nearest to each group's ``ratios``."""
        values = {}
        if self.config.pruning.tilt is None:
            values["ratio"] = self._on_grid("ratio", (min(ratios.values()) + max(ratios.values())) / 2)
        else:
            mean = sum(ratios.values()) / len(ratios)
            spread = sum(position**2 for position in self._positions.values())
            slope = (
                sum(ratios[name] * position for name, position in self._positions.items()) / spread if spread else 0.0
            )
            values["ratio"] = self._on_grid("ratio", mean)
            fitted = self._on_grid(TILT, slope / values["ratio"] if values["ratio"] else 0.0)
            values[TILT] = float(self._fixed.get(TILT, fitted))
        leant = self._leant(values["ratio"], values.get(TILT, 0.0))
        values.update(
            {
                OFFSET_PREFIX + name: self._on_grid(OFFSET_PREFIX + name, ratio - leant[name])
                for name, ratio in ratios.items()
            }
        )
        return values

    def _on_grid(self, key: str, value: float) -> float:
        """``value`` moved onto the grid of the searched ratio or offset ``key``, within its range."""
        distribution = self._distributions.get(key)
        if not isinstance(distribution, FloatDistribution):
            return value
        return snap(value, distribution.low, distribution.high, distribution.step)

    def uniform_seeds(self, count: int) -> list[dict[str, float]]:
        """``count`` partial parameter sets, each pruning every searched group at the same point of its
        range (``i / count`` of the way from low to high, the last at the highest ratios); the other
        parameters are left to the sampler."""
        pruning = self.config.pruning
        shared = pruning.uniform or bool(self._group_ranges)
        keys = ["ratio"] if shared else [RATIO_PREFIX + name for name in self.searched]
        offsets = {OFFSET_PREFIX + name: 0.0 for name in self.searched if OFFSET_PREFIX + name in self._distributions}
        if TILT in self._distributions:
            offsets[TILT] = self._on_grid(TILT, 0.0)
        seeds = []
        for index in range(1, count + 1):
            seed = {}
            for key in keys:
                distribution = self._distributions.get(key)
                if not isinstance(distribution, FloatDistribution):
                    continue  # a fixed ratio is not searched
                seed[key] = self._on_grid(
                    key, distribution.low + (distribution.high - distribution.low) * index / count
                )
            seed.update(offsets if seed else {})
            if seed and seed not in seeds:
                seeds.append(seed)
        return seeds

    def parse_params(self, logged: Mapping[str, Any]) -> dict[str, Any] | None:
        """This space's searched parameters from known values or their logged text (MLflow keeps
        params as strings), or ``None`` when one is missing or no longer fits its distribution."""
        values: dict[str, Any] = {}
        for name, distribution in self._distributions.items():
            text = logged.get(name)
            if text is None:
                return None
            value = parse_value(distribution, text)
            if value is None:
                return None
            values[name] = value
        return values

    def describe(self) -> dict[str, Any]:
        """A JSON-able view of the resolved space (logged beside the search)."""
        described: dict[str, Any] = {
            "searched": {name: repr(dist) for name, dist in self._distributions.items()},
            # settings added later are left out while off: the studies begun before them still resume
            "fixed": {k: v for k, v in self._fixed.items() if (k, v) not in _ADDED_OFF},
            "excluded_groups": sorted(self.excluded),
            "groups": {group.name: group.size for group in self.groups},
        }
        if self.fit is not None:  # only then: the descriptions of studies without it stay as they were
            described["fit_to_limit"] = dict(getattr(self.fit, "limits", {})) or True
        return described
