"""The supernet of the one-shot strategy: the dense model's channels nested by the space's importance
criterion, its weights fine-tuned once with the sandwich rule so that every width the space allows is
good (`engine.train_supernet`), cached like the dense model, and resumed from its last finished epoch
when a run was killed."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn

from .. import __version__
from .._files import write_atomically
from ..config import FinetuneConfig, OneShotConfig
from ..data import Splits
from ..engine import (
    EpochReport,
    GroupGraph,
    NestedChannels,
    PrunePlan,
    SubnetChoice,
    SupernetState,
    nested_order,
    train_supernet,
)
from ..errors import ModelError, TrialDiverged
from ._space import SearchSpace

__all__ = ["Supernet", "calibration_batches", "prepare_supernet", "sample_params"]

log = logging.getLogger("autoprune")
TAYLOR_BATCHES = 4
EXACT = 1e-3  # masked and extracted outputs closer than this: masking is removal, up to rounding


@dataclass
class Supernet:
    """The weights every candidate is cut from, how their channels nest, and where they came from."""

    model: nn.Module
    nested: NestedChannels
    source: str  # "trained", "cache" or "dense" (no supernet epochs: the dense weights as they are)
    seconds: float

    def describe(self) -> str:
        how = {"trained": "trained", "cache": "loaded from the cache", "dense": "the dense model's weights"}
        return f"supernet: {how[self.source]} in {self.seconds:.1f} s"


def sample_params(distributions: Mapping[str, BaseDistribution], generator: torch.Generator) -> dict[str, Any]:
    """One draw from each distribution, uniformly (over its grid when it has a step; in log space when
    it is a log range)."""

    def uniform() -> float:
        return float(torch.rand((), generator=generator))

    params: dict[str, Any] = {}
    for name, dist in distributions.items():
        if isinstance(dist, CategoricalDistribution):
            params[name] = dist.choices[int(uniform() * len(dist.choices)) % len(dist.choices)]
        elif isinstance(dist, IntDistribution):
            count = (dist.high - dist.low) // dist.step + 1
            params[name] = dist.low + dist.step * min(count - 1, int(uniform() * count))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            count = round((dist.high - dist.low) / dist.step) + 1
            params[name] = round(dist.low + dist.step * min(count - 1, int(uniform() * count)), 10)
        elif isinstance(dist, FloatDistribution) and dist.log:
            params[name] = float(dist.low * (dist.high / dist.low) ** uniform())
        elif isinstance(dist, FloatDistribution):
            params[name] = dist.low + uniform() * (dist.high - dist.low)
        else:
            raise TypeError(f"unsupported distribution {dist!r}")
    return params


def calibration_batches(splits: Splits, count: int, *, seed: int) -> list[torch.Tensor]:
    """``count`` training batches (inputs only, in the split's layout, not augmented) drawn once from a
    seeded shuffle: what every candidate's BatchNorm statistics are re-estimated on."""
    batches = splits.train.shuffled_batches(splits.batch_size, torch.Generator().manual_seed(seed))
    return [splits.train.rows(index) for index in batches[:count]]


def _cache_key(
    dense: nn.Module, settings: OneShotConfig, recipe: FinetuneConfig, space: SearchSpace, splits: Splits
) -> str:
    """A hash of everything the supernet's weights follow from: the dense weights, the one-shot and
    training settings, the space (its widths and criterion), the data's augmentation."""
    digest = hashlib.sha256()
    for name, tensor in sorted(dense.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    recipe_json = {
        "oneshot": settings.model_dump(mode="json", include={"supernet_epochs", "lr", "random_subnets"}),
        "recipe": _recipe_key(recipe),
        "space": space.describe(),
        "augment": [splits.augment.hflip, splits.augment.shift],
        "train": len(splits.train),
        "version": __version__,
    }
    digest.update(json.dumps(recipe_json, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _recipe_key(recipe: FinetuneConfig) -> dict[str, object]:
    """The recipe as the cache key holds it: how steps run is in it only when not the default, so keys
    of supernets trained before there was a choice stay valid."""
    key = recipe.model_dump(mode="json")
    for name, default in (("precision", "fp32"), ("compile", False)):
        if key.get(name) == default:
            key.pop(name)
    return key


def _recipe(settings: OneShotConfig, space: SearchSpace, splits: Splits, seed: int) -> FinetuneConfig:
    fixed = space.fixed
    return FinetuneConfig(
        epochs=settings.supernet_epochs,
        lr=settings.lr,
        optimizer="sgd",
        momentum=float(fixed.get("momentum", 0.9)),
        weight_decay=float(fixed.get("weight_decay", 5e-4)),
        # in-place distillation at T=1 as BigNAS does: at the fine-tunes' T=4 the small subnets' T^2-scaled
        # gradients swamped the shared weights (the digits CNN's loss rose 0.13 -> 3.8 in six epochs)
        temperature=1.0,
        batch_size=space.batch_size or splits.batch_size,
        seed=seed,
        precision=space.precision,
    )


def _save(payload: Mapping[str, Any], path: Path) -> None:
    write_atomically(path, lambda partial: torch.save(dict(payload), partial))


def _load(path: Path) -> dict[str, Any] | None:
    """A cached payload, or None when there is none or it cannot be read (it is rebuilt then)."""
    if not path.is_file():
        return None
    try:
        return dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # a damaged or stale cache entry is rebuilt, not fatal
        log.warning("ignoring the cached supernet %s: %s: %s", path.name, type(exc).__name__, exc)
        return None


def _check_masking(nested: NestedChannels, plan: PrunePlan, inputs: torch.Tensor) -> None:
    """Warn when masking a subnet inside the supernet is not the same as removing its channels here."""
    difference = nested.mismatch(plan, inputs)
    if difference > EXACT:
        where = ", ".join(sorted(set(nested.inexact))) or "layers between the groups"
        log.warning(
            "masking channels differs from removing them in this model by up to %.2g (%s): the supernet's "
            "fine-tune trains close relatives of the candidates; their scores (extracted subnets) are exact",
            difference,
            where,
        )


def prepare_supernet(
    dense: nn.Module,
    splits: Splits,
    space: SearchSpace,
    settings: OneShotConfig,
    *,
    cache_dir: Path,
    seed: int,
    calibration: list[torch.Tensor],
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> Supernet:
    """The supernet for ``space`` (see the module docstring); ``dense`` is not changed."""
    start = time.perf_counter()
    importance = space.config.pruning.importance[0]
    taylor = list(splits.train.batches(splits.batch_size))[:TAYLOR_BATCHES] if importance == "taylor" else None
    order = nested_order(GroupGraph(copy.deepcopy(dense), splits.input_shape), importance, seed=seed, batches=taylor)
    model = copy.deepcopy(dense).eval()
    nested = NestedChannels(model, splits.input_shape, order)
    _check_masking(nested, space.smallest_plan(), splits.val.head(16))
    if settings.supernet_epochs == 0:
        return Supernet(model, nested, "dense", time.perf_counter() - start)
    recipe = _recipe(settings, space, splits, seed)
    key = _cache_key(dense, settings, recipe, space, splits)
    final, partial = cache_dir / f"supernet-{key}.pt", cache_dir / f"supernet-{key}.partial.pt"
    cached = _load(final)
    if cached is not None:
        model.load_state_dict(cached["state_dict"])
        return Supernet(model.eval(), nested, "cache", time.perf_counter() - start)
    state = _resumed(model, _load(partial))
    choice = SubnetChoice(
        largest=space.largest_plan(),
        smallest=space.smallest_plan(),
        sample=lambda generator: space.candidate(sample_params(space.distributions, generator)).plan,
        random=settings.random_subnets,
    )

    def epoch_done(report: EpochReport, reached: SupernetState) -> None:
        payload = {"state_dict": model.state_dict(), "epoch": reached.epoch, "optimizer": reached.optimizer}
        _save({**payload, "generator": reached.generator}, partial)
        if on_epoch is not None:
            on_epoch(report)

    try:
        train_supernet(nested, splits, recipe, choice, calibration=calibration, state=state, on_epoch=epoch_done)
    except TrialDiverged as exc:
        raise ModelError(
            f"the supernet's training diverged ({exc.message}); lower oneshot.lr", key="oneshot.lr"
        ) from exc
    _save({"state_dict": model.state_dict()}, final)
    partial.unlink(missing_ok=True)
    return Supernet(model.eval(), nested, "trained", time.perf_counter() - start)


def _resumed(model: nn.Module, partial: Mapping[str, Any] | None) -> SupernetState | None:
    """The state an interrupted training reached (its weights loaded into ``model``), if any."""
    if partial is None:
        return None
    model.load_state_dict(partial["state_dict"])
    log.info("the supernet's training goes on from its epoch %d", partial["epoch"])
    return SupernetState(int(partial["epoch"]), partial["optimizer"], partial["generator"])
