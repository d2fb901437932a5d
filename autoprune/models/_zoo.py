"""Small reference models: an MLP, LeNet-5 and a configurable plain CNN.

Every constructor takes the data's ``input_shape`` (C, H, W) and ``num_classes`` so the same
architecture adapts to 8x8 digits and 28x28 Fashion-MNIST alike. The classifier is always the
module named ``classifier`` (the engine never prunes its outputs; it finds that by tracing, not by name).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["CNN", "MLP", "LeNet5", "flat_features", "head"]


def head(channels: int, hidden: int, dropout: float, *, batch_norm: bool = False) -> tuple[nn.Sequential, int]:
    """The layers between the pooled features and the classifier: a hidden fully connected layer (with
    BatchNorm) when ``hidden`` > 0, dropout when ``dropout`` > 0; and the width they end with."""
    layers: list[nn.Module] = []
    if hidden > 0:
        layers += [
            nn.Linear(channels, hidden),
            *([nn.BatchNorm1d(hidden)] if batch_norm else []),
            nn.ReLU(inplace=True),
        ]
        channels = hidden
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers), channels


def flat_features(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Number of features ``module`` produces for one input of ``input_shape``, found by a dry run."""
    with torch.no_grad():
        return int(module(torch.zeros(1, *input_shape)).flatten(1).shape[1])


class MLP(nn.Module):
    """Flatten → (Linear → BN → ReLU → Dropout) × len(hidden) → Linear."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        hidden: Sequence[int] = (256, 128),
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = 1
        for dim in input_shape:
            width *= int(dim)
        for units in hidden:
            layers.append(nn.Linear(width, units))
            if batch_norm:
                layers.append(nn.BatchNorm1d(units))
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = units
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet5(nn.Module):
    """LeNet-5 (conv 6 → pool → conv 16 → pool → fc 120 → fc 84 → classes), ReLU and max-pooling.

    On inputs smaller than 16x16 the second convolution is padded so that 8x8 digits still fit.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        channels, height, width = (int(d) for d in input_shape)
        second_padding = 0 if min(height, width) // 2 >= 10 else 2
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5, padding=second_padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(flat_features(self.features, input_shape), 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.features(x)))


class CNN(nn.Module):
    """A plain VGG-style CNN: per stage ``convs_per_stage`` × (3x3 conv → BN → ReLU), then 2x2 max-pool.

    Stages stop pooling once the feature map is 2x2 or smaller. A global average pool feeds an
    optional hidden fully connected layer and the classifier.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        widths: Sequence[int] = (32, 64),
        convs_per_stage: int = 1,
        hidden: int = 0,
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels, height, width = (int(d) for d in input_shape)
        layers: list[nn.Module] = []
        size = min(height, width)
        for stage_width in widths:
            for _ in range(convs_per_stage):
                layers.append(nn.Conv2d(channels, stage_width, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(stage_width))
                layers.append(nn.ReLU(inplace=True))
                channels = stage_width
            if size > 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head, channels = head(channels, hidden, dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.features(x)))
