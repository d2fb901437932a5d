"""Models a user might write, outside the zoo: built through ``model: {arch: factory}``, they go through
the same engine contract as the zoo (tests/engine/test_zoo_contract.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GroupNormConcat(nn.Module):
    """Two branches concatenated, mixed by a 1x1 conv under GroupNorm (channels in 4 blocks)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.a = nn.Sequential(nn.Conv2d(16, 16, 1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.mix = nn.Conv2d(32, 32, 1)
        self.norm = nn.GroupNorm(4, 32)
        self.head = nn.Linear(32 * 2 * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = F.relu(self.norm(self.mix(torch.cat([self.a(x), self.b(x)], dim=1))))
        return self.head(F.adaptive_max_pool2d(y, 2).flatten(1))


class PatchAttention(nn.Module):
    """2x2 patches as tokens, one 4-head self-attention and an MLP, both residual (heads in 4 blocks)."""

    def __init__(self, in_channels: int, num_classes: int, dim: int = 32) -> None:
        super().__init__()
        self.patch = nn.Conv2d(in_channels, dim, 2, stride=2)
        self.attn = nn.MultiheadAttention(dim, 4, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 64), nn.GELU(), nn.Linear(64, dim))
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = tokens + self.attn(tokens, tokens, tokens, need_weights=False)[0]
        tokens = tokens + self.mlp(self.norm(tokens))
        return self.head(tokens.mean(dim=1))


def groupnorm_concat(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return GroupNormConcat(input_shape[0], num_classes)


def patch_attention(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return PatchAttention(input_shape[0], num_classes)
