"""Channel importance criteria: callables from a Torch-Pruning group to one score per channel.

``l1``/``l2`` sum weight magnitudes over every coupled layer of the group, ``bn_scale`` uses the
BatchNorm scale factors (Network Slimming), ``taylor`` the first-order Taylor estimate |w·dL/dw|
from a few labelled batches, ``random`` a seeded random ranking (a baseline for the others).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import torch
import torch_pruning as tp
from torch import nn

from ..errors import PruningError
from ._modes import eval_mode

__all__ = ["accumulate_gradients", "importance_fn"]

log = logging.getLogger("autoprune")

Scorer = Callable[[str, tp.Group], torch.Tensor]


def _stable_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def importance_fn(criterion: str, *, seed: int = 0) -> Scorer:
    """A scorer ``(group_name, tp_group) -> scores`` for one of the plan's importance criteria."""
    magnitude = {"l1": 1, "l2": 2}
    if criterion in magnitude:
        scorer = tp.importance.GroupMagnitudeImportance(p=magnitude[criterion], normalizer=None)
        return lambda name, group: _checked(name, scorer(group))
    if criterion == "bn_scale":
        bn = tp.importance.BNScaleImportance(normalizer=None)
        fallback = tp.importance.GroupMagnitudeImportance(p=1, normalizer=None)

        def bn_scale(name: str, group: tp.Group) -> torch.Tensor:
            scores = bn(group)
            if scores is None:  # no BatchNorm in this group (e.g. an MLP without BN): rank by L1
                log.debug("group %s has no BatchNorm; bn_scale falls back to l1", name)
                scores = fallback(group)
            return _checked(name, scores)

        return bn_scale
    if criterion == "taylor":
        taylor = tp.importance.GroupTaylorImportance(normalizer=None)
        return lambda name, group: _checked(name, taylor(group))
    if criterion == "random":

        def random_scores(name: str, group: tp.Group) -> torch.Tensor:
            generator = torch.Generator().manual_seed(_stable_seed(seed, name))
            return torch.rand(len(group[0].idxs), generator=generator)

        return random_scores
    raise PruningError(f"unknown importance criterion {criterion!r}", key="importance")


def _checked(name: str, scores: torch.Tensor | None) -> torch.Tensor:
    if scores is None:
        raise PruningError(f"group '{name}' has no weights the importance criterion can score", key=name)
    scores = scores.detach().float().cpu()
    if not torch.isfinite(scores).all():
        raise PruningError(f"importance scores of group '{name}' are not finite (NaN/inf weights?)", key=name)
    return scores


def accumulate_gradients(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Fill ``.grad`` of every parameter with the summed cross-entropy gradient of ``batches``.

    The model is kept in eval mode so BatchNorm statistics do not move.
    """
    if not batches:
        raise PruningError("the taylor criterion needs labelled batches; none were given", key="importance")
    model.zero_grad(set_to_none=True)
    with eval_mode(model), torch.enable_grad():
        for inputs, targets in batches:
            nn.functional.cross_entropy(model(inputs), targets).backward()
