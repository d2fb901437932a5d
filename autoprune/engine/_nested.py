"""Nested channels: every group's channels ranked once, so a width per group names one subnet (the
first k channels of each group in that order), and the subnet can be run inside the full model by
masking the channels it drops.

This is what weight sharing needs (Once-for-All, BigNAS, AutoSlim): the channels a narrow subnet
keeps are a prefix of those a wider one keeps, so one set of weights trains every width at once. The
order is fixed when the nesting is built (from the importance criterion of the search's plans) and
rides along in every plan (`PrunePlan.order`), so extracting a subnet with the engine's pruning call
keeps exactly the channels its mask kept.

Masking zeroes a dropped channel at the output of every layer of its group (the convolution, its
BatchNorm, both sides of a residual add), which is what removing it does for the layers that read it.
Where a group's channels pass through something that does not keep zero at zero on their way to the
next layer (a sigmoid, a normalisation over channels such as LayerNorm or GroupNorm), masking is only
close to removal: `NestedChannels.inexact` says where, and `mismatch` measures it.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ._groups import Group, GroupGraph
from ._importance import accumulate_gradients, importance_fn
from ._modes import eval_mode
from ._plan import PrunePlan
from ._prune import apply_plan

__all__ = ["NestedChannels", "nested_order"]

_CHANNEL_DIM: tuple[tuple[type[nn.Module], int], ...] = (
    (nn.modules.conv._ConvNd, 1),
    (nn.modules.batchnorm._BatchNorm, 1),
    (nn.GroupNorm, 1),
    (nn.modules.instancenorm._InstanceNorm, 1),
    (nn.PReLU, 1),
    (nn.Linear, -1),
    (nn.LayerNorm, -1),
)
_NOT_ZERO_PRESERVING = (nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


@dataclass(frozen=True)
class _Member:
    """One layer of a group whose outputs carry the group's channels: where, and which of them."""

    module: nn.Module
    dim: int
    positions: torch.Tensor  # the layer's output index of each of the group's channels, in group order


def _channel_dim(module: nn.Module) -> int | None:
    return next((dim for kind, dim in _CHANNEL_DIM if isinstance(module, kind)), None)


def _ranked(scores: torch.Tensor, blocks: int) -> list[int]:
    """Channels from most to least important; with ``blocks``, position by position (ranked by the mean
    score over the blocks), every block's channel at that position together, so any prefix that is a
    multiple of ``blocks`` keeps the same positions in every block."""
    if blocks == 1:
        return torch.argsort(-scores, stable=True).tolist()
    width = scores.numel() // blocks
    positions = torch.argsort(-scores.view(blocks, width).mean(dim=0), stable=True).tolist()
    return [block * width + position for position in positions for block in range(blocks)]


def nested_order(
    graph: GroupGraph,
    importance: str,
    *,
    seed: int = 0,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, list[int]]:
    """Each group's channels from most to least important by ``importance`` (the criteria of
    `PrunePlan`; ``taylor`` needs labelled ``batches``)."""
    if importance == "taylor":
        accumulate_gradients(graph.model, list(batches or []))
    scorer = importance_fn(importance, seed=seed)
    order = {}
    for group in graph.groups:
        scores = scorer(group.name, graph.tp_group(group.name, range(group.size)))
        order[group.name] = _ranked(scores, group.blocks)
    if importance == "taylor":
        graph.model.zero_grad(set_to_none=True)
    return order


class NestedChannels:
    """The nesting of one model's groups (see the module docstring).

    Args:
        model: The model whose channels are nested (the supernet); it is traced, not changed.
        input_shape: Shape of one input (C, H, W).
        order: Each group's channels from most to least important (`nested_order`).
    """

    def __init__(self, model: nn.Module, input_shape: Sequence[int], order: Mapping[str, Sequence[int]]) -> None:
        self.model = model
        self.input_shape = tuple(int(d) for d in input_shape)
        graph = GroupGraph(model, self.input_shape)
        self.groups: dict[str, Group] = {group.name: group for group in graph.groups}
        self.order = {name: [int(c) for c in order[name]] for name in self.groups}
        self.inexact: list[str] = []  # layers where masking is close to removing, not the same
        self._members = {name: self._members_of(graph, group) for name, group in self.groups.items()}
        self._dropped: dict[nn.Module, torch.Tensor] = {}  # layer -> the output channels the subnet drops

    def _members_of(self, graph: GroupGraph, group: Group) -> list[_Member]:
        tp_group = graph.tp_group(group.name, range(group.size))
        names = {module: name for name, module in self.model.named_modules()}
        members = []
        for item in tp_group.items:
            dep, idxs = item.dep, item.idxs
            module = dep.target.module
            if not graph.graph.is_out_channel_pruning_fn(dep.handler) or module not in names:
                continue  # a layer's inputs, or an operation between layers (Torch-Pruning's own nodes)
            roots = getattr(item, "root_idxs", None)
            dim = _channel_dim(module)
            if dim is None or roots is None or any(r is None for r in roots) or len(roots) != len(idxs):
                self.inexact.append(names.get(module, type(module).__name__))
                continue
            if isinstance(module, _NOT_ZERO_PRESERVING):
                self.inexact.append(names.get(module, type(module).__name__))
            by_root = dict(zip((int(r) for r in roots), (int(i) for i in idxs)))
            positions = torch.tensor([by_root[c] for c in range(group.size)])
            members.append(_Member(module, dim, positions))
        return members

    def kept(self, plan: PrunePlan) -> dict[str, int]:
        """The channels ``plan`` keeps in each group (every group listed)."""
        return {name: plan.kept_channels(name, group.size, blocks=group.blocks) for name, group in self.groups.items()}

    def plan(self, base: PrunePlan) -> PrunePlan:
        """``base`` with this nesting's order: pruning it keeps each group's first channels."""
        return PrunePlan(
            ratios=base.ratios,
            keep=base.keep,
            importance=base.importance,
            round_to=base.round_to,
            min_channels=base.min_channels,
            seed=base.seed,
            order=self.order,
        )

    def select(self, kept: Mapping[str, int] | None) -> None:
        """Run the model as the subnet keeping ``kept[group]`` first channels of each group (None, or a
        group not listed: all of them) while `masking` is on."""
        dropped: dict[nn.Module, list[torch.Tensor]] = {}
        for name, members in self._members.items():
            count = self.groups[name].size if kept is None else int(kept.get(name, self.groups[name].size))
            if count >= self.groups[name].size:
                continue
            channels = torch.tensor(self.order[name][count:], dtype=torch.long)
            for member in members:
                dropped.setdefault(member.module, []).append(member.positions[channels])
        self._dropped = {module: torch.cat(parts) for module, parts in dropped.items()}

    @contextlib.contextmanager
    def masking(self) -> Iterator[NestedChannels]:
        """Inside the block the model runs as the selected subnet (forward hooks on the groups' layers,
        removed on leaving, so copies of the model made after it carry none)."""
        handles = [
            member.module.register_forward_hook(self._hook(member))
            for members in self._members.values()
            for member in members
        ]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, member: _Member):  # type: ignore[no-untyped-def]  # torch's hook signature
        def mask_output(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor | None:
            dropped = self._dropped.get(module)
            if dropped is None or not isinstance(output, torch.Tensor):
                return None
            mask = torch.ones(output.shape[member.dim], dtype=output.dtype, device=output.device)
            mask[dropped.to(output.device)] = 0
            shape = [1] * output.dim()
            shape[member.dim] = mask.numel()
            return output * mask.view(shape)

        return mask_output

    def extract(self, model: nn.Module, plan: PrunePlan) -> nn.Module:
        """A copy of ``model`` (this nesting's model, or one of its weights) pruned by the engine to the
        subnet of ``plan``: channels physically removed, the nested ones kept."""
        subnet = copy.deepcopy(model)
        apply_plan(subnet, self.plan(plan), self.input_shape)
        return subnet.eval()

    def mismatch(self, plan: PrunePlan, inputs: torch.Tensor) -> float:
        """Largest difference between the masked model's outputs and the extracted subnet's on
        ``inputs`` (eval mode): 0 up to rounding where masking is removal."""
        subnet = self.extract(self.model, plan)
        self.select(self.kept(plan))
        with eval_mode(self.model), torch.no_grad(), self.masking():
            masked = self.model(inputs)
        self.select(None)
        with torch.no_grad():
            return float((subnet(inputs) - masked).abs().max())
