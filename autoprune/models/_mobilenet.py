"""A MobileNetV2-style net (Sandler et al. 2018) sized for small images.

Inverted residual blocks: 1x1 expansion → 3x3 depthwise → 1x1 linear projection, with an identity
shortcut when stride is 1 and the width is kept. Pruning the expansion channels removes the matching
depthwise filters too (one dependency group per block); the projection widths of a stage share the
residual stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["DEFAULT_SETTING", "InvertedResidual", "MobileNetV2"]

# (expansion t, output channels c, repeats n, first stride s), as in the paper's table 2, shortened.
DEFAULT_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 2, 2),
    (6, 64, 2, 2),
)


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1) → depthwise (3x3) → project (1x1, linear); residual when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(_conv_bn(in_channels, hidden, 1))
        layers += [
            _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


def _scaled(channels: int, width_mult: float) -> int:
    return max(8, round(channels * width_mult / 8) * 8)


class MobileNetV2(nn.Module):
    """MobileNetV2 for small inputs: stride-1 stem, ``setting`` rows of inverted residual blocks,
    a 1x1 head convolution, global average pooling and a linear classifier.

    Strides after the stem only apply while the feature map is larger than 2x2.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        width_mult: float = 1.0,
        last_channels: int = 256,
        dropout: float = 0.1,
        setting: Sequence[Sequence[int]] = DEFAULT_SETTING,
    ) -> None:
        super().__init__()
        channels, height, width = (int(d) for d in input_shape)
        stem = _scaled(32, width_mult)
        layers: list[nn.Module] = [_conv_bn(channels, stem, 3)]
        size = min(height, width)
        in_channels = stem
        for expansion, out, repeats, first_stride in setting:
            out_channels = _scaled(out, width_mult)
            for index in range(repeats):
                stride = first_stride if index == 0 and size > 2 else 1
                size = (size + 1) // 2 if stride == 2 else size
                layers.append(InvertedResidual(in_channels, out_channels, stride, expansion))
                in_channels = out_channels
        head = _scaled(last_channels, max(1.0, width_mult))
        layers.append(_conv_bn(in_channels, head, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(self.features(x)), 1)
        return self.classifier(self.dropout(x))
