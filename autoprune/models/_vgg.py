"""A VGG-style net (Simonyan & Zisserman, 2015) with BatchNorm, its layer list written as VGG's
configurations are: a width for each 3x3 convolution, ``"M"`` for a 2x2 max-pool.

The default is VGG-11's shape (1, 1, 2, 2, 2 convolutions per stage) at a quarter of its widths, 16 to
128 channels: wide late layers over a small feature map, the kind of over-parameterised net whose
per-layer allocation matters when pruned (Network Slimming removed most of a VGG's parameters on
CIFAR-10 without loss). Pools stop once the feature map is 1x1, so 8x8 digits fit as 28x28 images do.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..config._model import VGG11_QUARTER
from ._zoo import head

__all__ = ["VGG"]


class VGG(nn.Module):
    """Convolutions (3x3, BatchNorm, ReLU) and pools as ``layers`` lists them; a global average pool,
    an optional hidden fully connected layer, then the classifier."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        layers: Sequence[int | str] = VGG11_QUARTER,
        hidden: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels, height, width = (int(d) for d in input_shape)
        size = min(height, width)
        features: list[nn.Module] = []
        for layer in layers:
            if layer == "M":
                if size > 1:
                    features.append(nn.MaxPool2d(2))
                    size //= 2
                continue
            out = int(layer)
            features += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        features += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*features)
        self.head, channels = head(channels, hidden, dropout, batch_norm=True)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.features(x)))
