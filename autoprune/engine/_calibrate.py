"""BatchNorm recalibration: a pruned (or weight-shared) model's normalisation statistics re-estimated
from a few training batches, its weights untouched.

Removing channels changes what every later layer sees, so the running means and variances a
BatchNorm layer kept for the dense model no longer fit; EagleEye (Li et al., ECCV 2020) showed that
re-estimating them ("adaptive BN") on a few batches turns a pruned model's accuracy from noise into a
useful estimate of its accuracy after fine-tuning, at the cost of a few forward passes. Weight-sharing
supernets (Once-for-All, BigNAS) recalibrate each subnet the same way before judging it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ._device import device_of
from ._modes import eval_mode

__all__ = ["batchnorm_layers", "recalibrate_batchnorm"]


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers that keep running statistics."""
    return [
        module
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats
    ]


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate every BatchNorm layer's running mean and variance as the plain average over
    ``batches`` (inputs only), in place; the model's weights, and everything else it holds, are left
    as they were, and the model is given back in the mode it was in. Returns how many layers were
    recalibrated (0: none, and nothing was run)."""
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over the batches, not an exponential one
    try:
        with eval_mode(model), torch.no_grad():  # dropout stays off; only BatchNorm sees training mode
            for layer in layers:
                layer.train()
            device = device_of(model)
            for inputs in batches:
                model(inputs.to(device, non_blocking=True))
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(layers)
