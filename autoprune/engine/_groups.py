"""Dependency groups: sets of coupled channels that must be removed together.

Torch-Pruning's ``DependencyGraph`` traces the model and finds, for every conv/linear output, every
other tensor dimension that must shrink with it (BN statistics, the next layer's inputs, both sides of
a residual add, the filters of a depthwise conv). We expose each such set as a small value, a `Group`,
named by the qualified name of its first conv/linear module, so plans are plain strings and numbers
that round-trip through YAML, JSON and MLflow.

Some layers split their channels into equal contiguous blocks: a ``GroupNorm`` normalises each of its
``num_groups`` blocks on its own, a ``MultiheadAttention`` gives each head one block of its embedding,
a grouped convolution connects each block of inputs to its own block of outputs, and ``torch.chunk``
cuts a tensor into equal parts. A group holding such a layer keeps the same number of channels in
every block (`Group.blocks`), as Torch-Pruning's own pruners do, so the layer still divides evenly and
each block keeps its own channels; a layer over part of the group (a GroupNorm on one chunk) counts in
blocks of its own width. A group that is only part of such a layer (one branch of a concatenation under
a GroupNorm, the inputs of a depthwise convolution with a channel multiplier) cannot shrink alone
without unbalancing the layer's blocks: it is held whole and `GroupGraph.unprunable` says why.
"""

from __future__ import annotations

import contextlib
import math
import os
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch_pruning as tp
from torch import nn

from .._deadline import Expired, deadline, innermost
from ..errors import ModelError
from ._device import device_of
from ._modes import eval_mode

__all__ = ["Group", "GroupGraph", "discover"]

_ROOT_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


GROUPING_LIMIT_S = 120
"""How long Torch-Pruning may take to group a model's channels (it loops on some designs)."""

_RESHAPE_HINT = (
    "a reshape or view that splits the channel axis (a channel shuffle, as in ShuffleNet) is the usual cause; "
    "such a model cannot be pruned by channels here"
)


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise `ModelError` if the block runs longer than ``seconds`` (main thread only), naming where
    it was stopped: in Torch-Pruning's grouping, or in the model's own forward pass."""
    try:
        with deadline(seconds):
            yield
    except Expired as exc:
        found = innermost(exc.frame, lambda f: not f.startswith((_TORCH, "<")))  # "<string>": generated code
        where, in_torch_pruning = (found[0], "torch_pruning" in found[1]) if found else ("an unknown place", True)
        if in_torch_pruning:
            message = (
                f"Torch-Pruning did not finish grouping the model's channels in {seconds:g} s (stopped in {where}); "
                f"{_RESHAPE_HINT}"
            )
        else:
            message = f"the model's forward pass did not return within {seconds:g} s of tracing (stopped in {where})"
        raise ModelError(message, key="model") from None


_TORCH = str(Path(torch.__file__).parent) + os.sep  # not torch_pruning, beside it


def _raised_in_torch_pruning(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and "torch_pruning" in frames[-1].filename


def _failure(exc: BaseException) -> str:
    """``ZeroDivisionError in update_reshape_index_mapping: integer division or modulo by zero``."""
    names = [f.name for f in traceback.extract_tb(exc.__traceback__) if not f.name.startswith("<")]  # <listcomp>
    where = f" in {names[-1]}" if names else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}{where}: {first}" if first else f"{type(exc).__name__}{where}"


@dataclass(frozen=True)
class Group:
    """One dependency group of coupled channels.

    Attributes:
        name: Qualified name of the group's first conv/linear module (``"layer2.0.conv1"``).
        size: Number of channels (or neurons) in the group before pruning.
        members: Qualified names of every module whose output channels shrink with the group.
        blocks: The equal contiguous blocks the channels form (GroupNorm groups, attention heads; 1 for
            none): a plan keeps the same number of channels in each, so kept counts are multiples of it.
    """

    name: str
    size: int
    members: tuple[str, ...]
    blocks: int = 1


@dataclass(frozen=True)
class _Handle:
    group: Group
    module: nn.Module
    prune_fn: Callable[..., object]


class GroupGraph:
    """The dependency graph of one model instance, with its prunable groups.

    Building it traces ``model`` once on a zero input of ``input_shape``; pruning through it keeps the
    graph in step with the model, so groups can be pruned one after another.
    """

    def __init__(self, model: nn.Module, input_shape: Sequence[int]) -> None:
        self.model = model
        self.input_shape = tuple(int(d) for d in input_shape)
        self._names = {module: name for name, module in model.named_modules()}
        self._order = {name: index for index, name in enumerate(self._names.values())}
        self._held: dict[str, str] = {}  # group -> why it is held whole
        with _time_limit(GROUPING_LIMIT_S):
            self.graph = self._trace(model, self.input_shape)
            try:
                self._handles = {handle.group.name: handle for handle in self._collect()}
            except Expired:
                raise
            except Exception as exc:  # Torch-Pruning fails inside its graph on layers it cannot follow
                unknown = ", ".join(f"{name} ({type(module).__name__})" for name, module in self._without_rule())
                hint = f"; it has no pruning rule for {unknown}" if unknown else ""
                raise ModelError(
                    f"Torch-Pruning cannot group the model's channels ({_failure(exc)}){hint}", key="model"
                ) from exc

    @staticmethod
    def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> tp.DependencyGraph:
        # BN in eval mode accepts any batch size and leaves its statistics alone
        try:
            with eval_mode(model), torch.enable_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                example = torch.zeros(2, *input_shape, device=device_of(model))
                return tp.DependencyGraph().build_dependency(model, example_inputs=example, verbose=False)
        except Expired:
            raise
        except Exception as exc:  # tracing runs user code: report it as a model problem
            if _raised_in_torch_pruning(exc):
                raise ModelError(
                    f"Torch-Pruning cannot follow the model's graph ({_failure(exc)}); {_RESHAPE_HINT}", key="model"
                ) from exc
            raise ModelError(
                f"cannot trace the model on an input of shape {list(input_shape)}: {exc}", key="model"
            ) from exc

    def _collect(self) -> Iterator[_Handle]:
        for tp_group in self.graph.get_all_groups(root_module_types=_ROOT_TYPES):
            if self._changes_output(tp_group):
                continue  # the classifier's outputs (or anything feeding the output directly) stay whole
            root_dep = tp_group[0].dep
            members = sorted(
                {
                    self._names[dep.target.module]
                    for dep, _ in tp_group
                    if self.graph.is_out_channel_pruning_fn(dep.handler) and dep.target.module in self._names
                },
                key=self._order.__getitem__,
            )
            roots = [name for name in members if isinstance(self.model.get_submodule(name), _ROOT_TYPES)]
            name = roots[0] if roots else self._names[root_dep.target.module]
            size = len(tp_group[0].idxs)
            blocks, holder = self._blocks(tp_group, size)
            group = Group(name=name, size=size, members=tuple(members), blocks=blocks)
            if size > 1 and blocks == size:  # every block of one channel: nothing can go
                self._held[name] = f"shrinking it alone would unbalance the blocks of {holder}"
            out = self.graph.get_out_channels(root_dep.target.module) or size
            if size != out:  # a chunk merged back, a dual-path concatenation sliced again
                self._held[name] = (
                    f"its {out} output channels are split and joined again (as in dual-path networks) into what "
                    f"Torch-Pruning counts as {size} channels, which it cannot map back to them; kept whole"
                )
            yield _Handle(group=group, module=root_dep.target.module, prune_fn=root_dep.handler)

    def _blocks(self, tp_group: tp.Group, size: int) -> tuple[int, str]:
        """How many equal blocks the group's channels form (the least common multiple over its layers,
        see the module docstring), and the layer that sets the most."""
        blocks, holder = 1, ""
        for dep, _ in tp_group:
            count = _layer_blocks(dep.target.module, size, self.graph.is_out_channel_pruning_fn(dep.handler))
            if math.lcm(blocks, count) > blocks:
                blocks = math.lcm(blocks, count)
                module = dep.target.module
                holder = self._names.get(
                    module, "a torch.chunk or split" if hasattr(module, "split_sizes") else "an operation"
                )
        return blocks, holder

    def _without_rule(self) -> Iterator[tuple[str, nn.Module]]:
        """Layers with weights that Torch-Pruning has no channel-pruning rule for (recurrent layers, say)."""
        for name, module in self.model.named_modules():
            if name and any(True for _ in module.parameters(recurse=False)):
                pruner = self.graph.get_pruner_of_module(module)
                if pruner is None or isinstance(pruner, tp.ops.ElementWisePruner):
                    yield name, module

    def _changes_output(self, tp_group: tp.Group) -> bool:
        """True when pruning the group would shrink a tensor the model returns (its classifier)."""
        return any(not dep.target.outputs and self.graph.is_out_channel_pruning_fn(dep.handler) for dep, _ in tp_group)

    def _feeds_output(self, module: nn.Module) -> bool:
        node = self.graph.module2node.get(module)
        return node is not None and not node.outputs

    @property
    def groups(self) -> list[Group]:
        """Prunable groups in the order the model's modules are defined."""
        handles = sorted(self._handles.values(), key=lambda h: self._order.get(h.group.name, 0))
        return [handle.group for handle in handles if handle.group.name not in self._held]

    def __contains__(self, name: str) -> bool:
        return name in self._handles

    def tp_group(self, name: str, idxs: Sequence[int]) -> tp.Group:
        """Torch-Pruning's group for ``name`` restricted to channel indices ``idxs``."""
        handle = self._handles[name]
        return self.graph.get_pruning_group(handle.module, handle.prune_fn, list(idxs))

    def channels(self, name: str) -> int:
        """Current channel count of group ``name`` (shrinks as the group is pruned)."""
        handle = self._handles[name]
        count = self.graph.get_out_channels(handle.module)
        return int(count if count is not None else handle.group.size)

    def unprunable(self) -> list[tuple[str, str]]:
        """Layers with weights that no group can shrink, each with the reason."""
        covered = {member for handle in self._handles.values() for member in handle.group.members}
        rows = sorted(self._held.items(), key=lambda row: self._order.get(row[0], 0))
        for name, module in self.model.named_modules():
            if name in covered or not name or any(True for _ in module.children()):
                continue
            if any(name.startswith(member + ".") for member in covered):
                continue  # part of a layer pruned as a whole (an attention layer's out_proj)
            if not any(True for _ in module.parameters(recurse=False)):
                continue
            if module not in self.graph.module2node:
                reason = "not reached by the traced forward pass"
            elif isinstance(module, _ROOT_TYPES) and self._feeds_output(module):
                reason = "its outputs are the model's outputs"
            elif isinstance(module, _ROOT_TYPES):
                reason = "Torch-Pruning roots no dependency group at it"
            else:
                reason = f"{type(module).__name__} has no channel-pruning rule"
            rows.append((name, reason))
        return rows


def discover(model: nn.Module, input_shape: Sequence[int]) -> list[Group]:
    """The prunable dependency groups of ``model`` for inputs of shape ``input_shape`` (C, H, W)."""
    return GroupGraph(model, input_shape).groups


def _layer_blocks(module: object, size: int, outputs: bool) -> int:
    """The blocks a group of ``size`` channels must shrink alike in for ``module`` (one of its layers, on
    the layer's outputs or else inputs): 1 for none, ``size`` when the layer spans more than the group."""
    split = _layer_split(module, outputs)
    if split is None:
        return 1
    width, count = split
    if width == size:
        return count
    block = width // count
    return size // block if width < size and size % block == 0 else size


def _layer_split(module: object, outputs: bool) -> tuple[int, int] | None:
    """(channels, equal contiguous blocks) of a layer that splits its channels (module docstring)."""
    if isinstance(module, nn.GroupNorm):
        return module.num_channels, module.num_groups
    if isinstance(module, nn.MultiheadAttention):
        return module.embed_dim, module.num_heads
    if isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1:
        if module.groups == module.in_channels == module.out_channels:
            return None  # depthwise: Torch-Pruning shrinks its inputs and outputs together
        return (module.out_channels if outputs else module.in_channels), module.groups
    sizes = getattr(module, "split_sizes", None)  # Torch-Pruning's record of a torch.chunk / torch.split
    if sizes and len(sizes) > 1 and len(set(sizes)) == 1:
        return sum(sizes), len(sizes)
    return None
