"""The model zoo (mlp, lenet5, cnn, resnet, mobilenet_v2) and the factory for the user's own models."""

from __future__ import annotations

from ._factory import build, build_from_spec, load_checkpoint, model_spec
from ._mobilenet import InvertedResidual, MobileNetV2
from ._resnet import BasicBlock, ResNet
from ._vgg import VGG
from ._zoo import CNN, MLP, LeNet5

__all__ = [
    "CNN",
    "MLP",
    "VGG",
    "BasicBlock",
    "InvertedResidual",
    "LeNet5",
    "MobileNetV2",
    "ResNet",
    "build",
    "build_from_spec",
    "load_checkpoint",
    "model_spec",
]
