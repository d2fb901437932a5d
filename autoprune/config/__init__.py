"""Typed configuration: pydantic models of a pipeline and a search space, loaded from YAML."""

from __future__ import annotations

from ._data import (
    FASHION_MNIST_DIR,
    DataConfig,
    DigitsData,
    FactoryData,
    FashionMnistData,
    ImageFolderData,
    NpzData,
)
from ._model import (
    CNNModel,
    DenseTraining,
    FactoryModel,
    LeNet5Model,
    MLPModel,
    MobileNetV2Model,
    ModelConfig,
    ResNetModel,
)

__all__ = [
    "FASHION_MNIST_DIR",
    "DataConfig",
    "DigitsData",
    "FactoryData",
    "FashionMnistData",
    "ImageFolderData",
    "NpzData",
    "CNNModel",
    "DenseTraining",
    "FactoryModel",
    "LeNet5Model",
    "MLPModel",
    "MobileNetV2Model",
    "ModelConfig",
    "ResNetModel",
]
