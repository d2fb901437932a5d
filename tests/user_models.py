"""Models a user might write, outside the zoo, built through ``model: {arch: factory}``. Each goes
through the same engine contract as the zoo (tests/engine/test_zoo_contract.py), except
``fixed_head_width``, whose code fixes a width: validate must name the groups that break it."""

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


class GroupedChunk(nn.Module):
    """A ResNeXt-style residual block (a 4-group conv), then the channels chunked in two halves, each
    through its own conv."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(32, 32, 1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, groups=4),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 1),
            nn.BatchNorm2d(32),
        )
        self.left, self.right = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        a, b = torch.chunk(F.relu(x + self.block(x)), 2, dim=1)
        return self.head(F.relu(torch.cat([self.left(a), self.right(b)], dim=1)).mean((2, 3)))


class UpsampleSkip(nn.Module):
    """A U-Net step: down, InstanceNorm, up again with a transposed conv, fused with the skip by concatenation."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU())
        self.mid = nn.Sequential(
            nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.InstanceNorm2d(32, affine=True), nn.ReLU()
        )
        self.up = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.fuse = nn.Conv2d(32, 16, 3, padding=1)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.down(x)
        up = F.interpolate(self.up(self.mid(skip)), size=skip.shape[-2:])
        return self.head(F.relu(self.fuse(torch.cat([skip, up], dim=1))).mean((2, 3)))


class FixedHeadWidth(nn.Module):
    """Hand-written attention as many models have it: a qkv projection reshaped into 4 heads by the
    tokens' width, then a projection back. Pruning that width breaks the reshape (validate names it)."""

    def __init__(self, in_channels: int, num_classes: int, dim: int = 32) -> None:
        super().__init__()
        self.patch = nn.Conv2d(in_channels, dim, 2, stride=2)
        self.norm = nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 64), nn.GELU(), nn.Linear(64, dim))
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        batch, count, width = tokens.shape
        qkv = self.qkv(self.norm(tokens)).reshape(batch, count, 3, 4, width // 4).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        mixed = (torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v).transpose(1, 2).reshape(batch, count, -1)
        tokens = tokens + self.proj(mixed)
        return self.head((tokens + self.mlp(tokens)).mean(1))


def groupnorm_concat(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return GroupNormConcat(input_shape[0], num_classes)


def patch_attention(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return PatchAttention(input_shape[0], num_classes)


def grouped_chunk(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return GroupedChunk(input_shape[0], num_classes)


def fixed_head_width(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return FixedHeadWidth(input_shape[0], num_classes)


def upsample_skip(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return UpsampleSkip(input_shape[0], num_classes)
