"""The pipeline's search space bound to the dense model: its groups, its size constraints checked
(refused when no candidate can meet them), its plans fitted to the limits with ``fit_to_limit``.
Built the same way by `validate` and by `run`."""

from __future__ import annotations

import copy
import logging

from torch import nn

from .. import data, engine
from ..config import Constraints, PipelineConfig
from ..errors import ConfigError, ModelError
from ..search import SearchSpace

__all__ = ["build_space", "check_constraints"]

log = logging.getLogger("autoprune")


def check_constraints(
    model: nn.Module, space: SearchSpace, constraints: Constraints, input_shape: tuple[int, ...]
) -> None:
    """Refuse size constraints that no candidate of the space can meet (every trial would be infeasible).

    Raises:
        ConfigError: Naming the constraint, its limit and the smallest value the space reaches.
    """
    limits = {"params": constraints.max_params, "macs": constraints.max_macs, "size_bytes": constraints.max_size_bytes}
    if all(limit is None for limit in limits.values()):
        return
    smallest = copy.deepcopy(model)
    engine.apply_plan(smallest, space.smallest_plan(), input_shape)
    reached = {
        "params": engine.count_params(smallest),
        "macs": engine.count_macs(smallest, input_shape),
        "size_bytes": engine.size_bytes(smallest),
    }
    for metric, limit in limits.items():
        if limit is not None and reached[metric] > limit:
            raise ConfigError(
                f"{limit:,} can never hold: the smallest model this search space reaches (every group at its "
                f"highest ratio) has {reached[metric]:,} {metric.replace('_', ' ')}; raise the limit or the ratios",
                key=f"constraints.max_{metric}",
            )


def _check_something_prunes(space: SearchSpace, groups: list[engine.Group]) -> None:
    """Refuse a space whose every candidate is the dense model (the search would find nothing).

    Raises:
        ConfigError: Naming the setting that keeps every channel.
    """
    smallest, pruning = space.smallest_plan(), space.config.pruning
    searched = [g for g in groups if g.name in space.searched]
    if not searched or any(smallest.kept_channels(g.name, g.size, blocks=g.blocks) < g.size for g in searched):
        return
    widest = max(g.size for g in searched)
    if pruning.min_channels >= widest:
        key, why = "min_channels", f"min_channels {pruning.min_channels:,} is at least every group's width"
    elif pruning.round_to is not None and pruning.round_to >= widest:
        key, why = "round_to", f"round_to {pruning.round_to:,} rounds every group back to its width"
    else:
        key, why = "ratio", "the highest ratio the space allows removes no channel of any group"
    raise ConfigError(
        f"every candidate would be the unpruned model: {why} (the widest has {widest:,} channels)",
        key=f"search.space.pruning.{key}",
    )


def build_space(
    config: PipelineConfig, model: nn.Module, groups: list[engine.Group], splits: data.Splits
) -> SearchSpace:
    """The pipeline's search space on ``model``'s groups, its size constraints checked, its plans fitted
    to them when ``search.fit_to_limit`` is on.

    Raises:
        ConfigError: A size constraint no candidate can meet, or ``fit_to_limit`` with no size limit.
    """
    search = config.search
    if not groups:
        reasons = "; ".join(f"{name}: {why}" for name, why in engine.GroupGraph(model, splits.input_shape).unprunable())
        raise ModelError(
            f"the model has no prunable dependency group ({reasons or 'no conv/linear layer'})", key="model"
        )
    space = SearchSpace(
        search.space,
        groups,
        batch_size=splits.batch_size,
        train_fraction=search.train_fraction,
        seed=config.seed,
        precision=config.precision,
    )
    _check_something_prunes(space, groups)
    check_constraints(model, space, config.constraints, splits.input_shape)
    if search.fit_to_limit:
        limits = {metric: getattr(config.constraints, f"max_{metric}") for metric in engine.SIZE_METRICS}
        if all(limit is None for limit in limits.values()):
            raise ConfigError(
                "there is no size limit to fit the plans to: set constraints.max_params, max_macs or max_size_bytes, "
                "or turn fit_to_limit off",
                key="search.fit_to_limit",
            )
        space.fit = engine.FitToLimit(model, splits.input_shape, groups, limits, space.smallest_plan().ratios)
        for metric in (m for m in config.objectives if limits.get(m) is not None):
            log.warning(
                "search.fit_to_limit holds every trial's %s just under constraints.max_%s, so the objective %r "
                "barely varies and the front spreads in the other objectives only; drop it or turn fit_to_limit off",
                metric,
                metric,
                metric,
            )
    return space
