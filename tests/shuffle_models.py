"""Models that stress Torch-Pruning's grouping: ShuffleNetV2's split, branch, concatenate and shuffle
(one fails inside its graph, the other, the common CIFAR version, makes it loop), DPN's dual path and a
convolution shared between two branches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)


def _shuffle_by_view(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


def _conv_bn(inputs: int, outputs: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(outputs))


class SplitShuffle(nn.Module):
    """Half the channels through a branch, concatenated back and shuffled."""

    def __init__(self, channels: int, chunk: bool) -> None:
        super().__init__()
        half = channels // 2
        self.chunk = chunk
        self.branch = nn.Sequential(_conv_bn(half, half), _conv_bn(half, half, 3, 1, half), _conv_bn(half, half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1] // 2
        kept, through = x.chunk(2, dim=1) if self.chunk else (x[:, :c], x[:, c:])
        shuffle = _shuffle_by_view if self.chunk else _shuffle
        return shuffle(torch.cat([kept, F.relu(self.branch(through))], 1))


class Down(nn.Module):
    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        half = outputs // 2
        self.left = nn.Sequential(_conv_bn(inputs, inputs, 3, 2, inputs), _conv_bn(inputs, half))
        self.right = nn.Sequential(_conv_bn(inputs, half), _conv_bn(half, half, 3, 2, half), _conv_bn(half, half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _shuffle(torch.cat([F.relu(self.left(x)), F.relu(self.right(x))], 1))


class ShuffleNet(nn.Module):
    def __init__(self, channels: int, num_classes: int, *, chunk: bool, widths: tuple[int, ...], repeats: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(channels, 24, 3), nn.ReLU()]
        previous = 24
        for width in widths:
            layers += [Down(previous, width), *(SplitShuffle(width, chunk) for _ in range(repeats))]
            previous = width
        self.features = nn.Sequential(*layers, _conv_bn(previous, 256), nn.ReLU())
        self.classifier = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def shufflenet_chunk(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Splits with ``torch.chunk``, shuffles with ``view``: Torch-Pruning fails on the shuffle's reshape."""
    return ShuffleNet(input_shape[0], num_classes, chunk=True, widths=(48, 96), repeats=2)


def shufflenet_slices(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Splits by slicing, as the common CIFAR ShuffleNetV2 does: Torch-Pruning's grouping loops."""
    return ShuffleNet(input_shape[0], num_classes, chunk=False, widths=(48, 96, 192), repeats=3)


class DualPath(nn.Module):
    """DPN's block: one conv's output sliced into a residual part (added) and a dense part (concatenated)."""

    def __init__(self, channels: int, num_classes: int, residual: int = 16, dense: int = 8) -> None:
        super().__init__()
        self.residual = residual
        self.stem = _conv_bn(channels, residual, 3)
        self.blocks = nn.ModuleList(_conv_bn(residual + i * dense, residual + dense, 3) for i in range(3))
        self.classifier = nn.Linear(residual + 3 * dense, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res, dense = F.relu(self.stem(x)), x[:, :0]
        for block in self.blocks:
            out = F.relu(block(torch.cat([res, dense], 1)))
            res, dense = res + out[:, : self.residual], torch.cat([dense, out[:, self.residual :]], 1)
        return self.classifier(F.adaptive_avg_pool2d(torch.cat([res, dense], 1), 1).flatten(1))


class SharedBranch(nn.Module):
    """One convolution applied twice (weights shared between two branches), the results added."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = _conv_bn(channels, 16, 3)
        self.shared = _conv_bn(16, 16, 3)
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.relu(self.shared(x)) + F.relu(self.shared(F.max_pool2d(x, 3, 1, 1)))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


def dual_path(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return DualPath(input_shape[0], num_classes)


def shared_branch(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return SharedBranch(input_shape[0], num_classes)
