"""Applying a `PrunePlan`: rank channels, then physically remove them group by group."""

from __future__ import annotations

import difflib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import PruningError
from ._groups import GroupGraph
from ._importance import accumulate_gradients, importance_fn
from ._plan import PrunePlan

__all__ = ["PruneOutcome", "apply_plan", "check_plan"]


@dataclass(frozen=True)
class PruneOutcome:
    """What applying a plan did.

    Attributes:
        kept: Channels kept per group (every group, pruned or not).
        removed: Removed channel indices per pruned group, in the dense model's numbering.
        seconds: Wall time of ranking and pruning.
    """

    kept: dict[str, int]
    removed: dict[str, list[int]]
    seconds: float

    @property
    def pruned_groups(self) -> int:
        return len(self.removed)


def check_plan(plan: PrunePlan, graph: GroupGraph) -> None:
    """Raise `PruningError` naming the first group the plan mentions that the model does not have."""
    known = [group.name for group in graph.groups]
    for name in [*plan.ratios, *plan.keep]:
        if name not in graph:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; the model's groups are: {', '.join(known)}"
            raise PruningError(f"the plan names group '{name}', which this model does not have{hint}", key=name)


def _decide(
    plan: PrunePlan,
    graph: GroupGraph,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]] | None,
) -> dict[str, list[int]]:
    """Removed channel indices per group, all ranked on the unpruned model."""
    needs_scores = {}
    for group in graph.groups:
        listed = group.name in plan.ratios or group.name in plan.keep
        if (listed and plan.kept_channels(group.name, group.size, blocks=group.blocks) < group.size) or (
            not listed and plan.threshold is not None
        ):
            needs_scores[group.name] = group
    if not needs_scores:
        return {}
    removed: dict[str, list[int]] = {}
    for name in [name for name in needs_scores if name in plan.order]:  # a fixed order: its first channels stay
        group = needs_scores.pop(name)
        if sorted(plan.order[name]) != list(range(group.size)):
            raise PruningError(
                f"the order of group '{name}' must rank each of its {group.size} channels once", key=name
            )
        kept = plan.kept_channels(name, group.size, blocks=group.blocks)
        removed[name] = sorted(plan.order[name][kept:])
    if not needs_scores:
        return removed
    if plan.importance == "taylor":
        accumulate_gradients(graph.model, list(batches or []))
    scorer = importance_fn(plan.importance, seed=plan.seed)
    for name, group in needs_scores.items():
        scores = scorer(name, graph.tp_group(name, range(group.size)))
        peak = float(scores.max())
        normalised = scores / peak if peak > 0 else torch.ones_like(scores)
        kept = plan.kept_channels(name, group.size, normalised, blocks=group.blocks)
        if kept < group.size:
            removed[name] = _lowest(scores, group.size - kept, group.blocks)
    return removed


def _lowest(scores: torch.Tensor, count: int, blocks: int) -> list[int]:
    """The ``count`` channels to remove: the lowest scores, or with ``blocks`` the same positions in
    every block, ranked by their mean score over the blocks (as Torch-Pruning ranks grouped channels)."""
    if blocks == 1:
        order = torch.argsort(scores, stable=True)  # ties broken by index: replays are exact
        return sorted(order[:count].tolist())
    width = scores.numel() // blocks
    positions = torch.argsort(scores.view(blocks, width).mean(dim=0), stable=True)[: count // blocks]
    return sorted(block * width + int(position) for block in range(blocks) for position in positions)


def apply_plan(
    model: nn.Module,
    plan: PrunePlan,
    input_shape: Sequence[int],
    *,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> PruneOutcome:
    """Prune ``model`` in place according to ``plan``; channels are physically removed.

    Args:
        model: The model to prune (pass a copy to keep the dense one).
        plan: Which groups to shrink and how to rank their channels.
        input_shape: Shape of one input (C, H, W), used to trace the dependency graph.
        batches: Labelled batches for the ``taylor`` criterion.

    Raises:
        PruningError: The plan names an unknown group, or pruning would empty a layer.
    """
    start = time.perf_counter()
    graph = GroupGraph(model, input_shape)
    check_plan(plan, graph)
    removed = _decide(plan, graph, batches)
    with torch.no_grad():
        for name, idxs in removed.items():
            tp_group = graph.tp_group(name, idxs)
            if not graph.graph.check_pruning_group(tp_group):
                raise PruningError(f"pruning group '{name}' would leave a layer with no channels", key=name)
            tp_group.prune()
    if plan.importance == "taylor":
        model.zero_grad(set_to_none=True)
    kept = {group.name: group.size - len(removed.get(group.name, ())) for group in graph.groups}
    return PruneOutcome(kept=kept, removed=removed, seconds=time.perf_counter() - start)
