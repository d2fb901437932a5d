"""CIFAR-style ResNet (He et al. 2016, section 4.2): depth 6n+2, three stages of basic blocks.

Shortcuts that change shape use a 1x1 convolution with BN (option B), so every block of a stage adds
into the same residual stream: pruning that stream is one dependency group per stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["BasicBlock", "ResNet"]


class BasicBlock(nn.Module):
    """conv3x3 → BN → ReLU → conv3x3 → BN, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-``depth`` for small images with any number of input channels and any size.

    One stage (``layer1``, ``layer2``, ...) per entry of ``widths``; every stage after the first halves
    the feature map while it is larger than 2x2.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        depth: int = 20,
        widths: Sequence[int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"ResNet depth must be 6n+2 with n >= 1 (20, 32, 56, ...), got {depth}")
        blocks_per_stage = (depth - 2) // 6
        channels, height, width = (int(d) for d in input_shape)
        self.conv1 = nn.Conv2d(channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        size = min(height, width)
        in_channels = widths[0]
        self.stages: list[str] = []
        for index, stage_width in enumerate(widths):
            stride = 2 if index > 0 and size > 2 else 1
            size = (size + 1) // stride if stride == 2 else size
            blocks = []
            for block in range(blocks_per_stage):
                blocks.append(BasicBlock(in_channels, stage_width, stride if block == 0 else 1))
                in_channels = stage_width
            self.stages.append(f"layer{index + 1}")
            self.add_module(self.stages[-1], nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.classifier(torch.flatten(self.pool(x), 1))
