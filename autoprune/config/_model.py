"""Typed configuration of the dense model (the ``model:`` block of a pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ._base import FactoryPath, Strict
from ._engine import DenseTraining

__all__ = [
    "VGG11_QUARTER",
    "CNNModel",
    "FactoryModel",
    "LeNet5Model",
    "MLPModel",
    "MobileNetV2Model",
    "ModelConfig",
    "ResNetModel",
    "VGGModel",
]

PositiveInt = Annotated[int, Field(ge=1)]


class _ModelBase(Strict):
    train: DenseTraining = Field(default_factory=DenseTraining)
    checkpoint: Path | None = Field(None, description="state dict of the dense model; loaded with weights_only")


class MLPModel(_ModelBase):
    arch: Literal["mlp"]
    hidden: list[PositiveInt] = Field(default_factory=lambda: [256, 128], min_length=1)
    batch_norm: bool = True
    dropout: float = Field(0.0, ge=0, lt=1)


class LeNet5Model(_ModelBase):
    arch: Literal["lenet5"]


class CNNModel(_ModelBase):
    arch: Literal["cnn"]
    widths: list[PositiveInt] = Field(default_factory=lambda: [32, 64], min_length=1)
    convs_per_stage: int = Field(1, ge=1)
    hidden: int = Field(0, ge=0)
    batch_norm: bool = True
    dropout: float = Field(0.0, ge=0, lt=1)


class ResNetModel(_ModelBase):
    arch: Literal["resnet"]
    depth: int = 20
    widths: list[PositiveInt] = Field(default_factory=lambda: [16, 32, 64], min_length=1)

    @field_validator("depth")
    @classmethod
    def _six_n_plus_two(cls, depth: int) -> int:
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"must be 6n+2 with n >= 1 (20, 32, 56, ...), but got {depth}")
        return depth


class MobileNetV2Model(_ModelBase):
    arch: Literal["mobilenet_v2"]
    width_mult: float = Field(1.0, gt=0)
    last_channels: int = Field(256, ge=8)
    dropout: float = Field(0.1, ge=0, lt=1)


VGG11_QUARTER: tuple[int | Literal["M"], ...] = (16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M")


class VGGModel(_ModelBase):
    """VGG-style: ``layers`` lists a width per 3x3 convolution and ``M`` per 2x2 max-pool (default:
    VGG-11's shape at a quarter of its widths, 16 to 128 channels)."""

    arch: Literal["vgg"]
    layers: list[PositiveInt | Literal["M"]] = Field(default_factory=lambda: list(VGG11_QUARTER), min_length=1)
    hidden: int = Field(0, ge=0)
    dropout: float = Field(0.0, ge=0, lt=1)

    @field_validator("layers")
    @classmethod
    def _has_a_convolution(cls, layers: list[int | str]) -> list[int | str]:
        if not any(layer != "M" for layer in layers):
            raise ValueError(f"needs at least one convolution width, but got {layers}")
        return layers


class FactoryModel(_ModelBase):
    """``"package.module:function"`` returning an ``nn.Module``; it receives ``input_shape`` and
    ``num_classes`` when its signature accepts them, plus ``kwargs``."""

    arch: Literal["factory"]
    factory: FactoryPath
    kwargs: dict[str, Any] = Field(default_factory=dict)


ModelConfig = Annotated[
    MLPModel | LeNet5Model | CNNModel | ResNetModel | MobileNetV2Model | VGGModel | FactoryModel,
    Field(discriminator="arch"),
]
