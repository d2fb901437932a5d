"""Shared fixtures: the digits splits and the zoo, small enough for a 2-core CPU."""

from __future__ import annotations

import pytest
import torch

from autoprune import config, data, engine, models

ZOO = {
    "mlp": config.MLPModel(arch="mlp", hidden=[64, 32]),
    "lenet5": config.LeNet5Model(arch="lenet5"),
    "cnn": config.CNNModel(arch="cnn", widths=[16, 32]),
    "resnet": config.ResNetModel(arch="resnet", depth=20),
    "mobilenet_v2": config.MobileNetV2Model(arch="mobilenet_v2", width_mult=0.5, last_channels=64),
    "vgg": config.VGGModel(arch="vgg", layers=[8, "M", 16, "M", 32, 32, "M"], hidden=16),
    # written as a user would, outside the zoo (tests/user_models.py)
    "groupnorm_concat": config.FactoryModel(arch="factory", factory="tests.user_models:groupnorm_concat"),
    "patch_attention": config.FactoryModel(arch="factory", factory="tests.user_models:patch_attention"),
    "grouped_chunk": config.FactoryModel(arch="factory", factory="tests.user_models:grouped_chunk"),
    "upsample_skip": config.FactoryModel(arch="factory", factory="tests.user_models:upsample_skip"),
}
DIGITS_SHAPE = (1, 8, 8)


@pytest.fixture(scope="session")
def digits() -> data.Splits:
    return data.load(config.DigitsData(), seed=0)


@pytest.fixture(params=sorted(ZOO))
def zoo_model(request: pytest.FixtureRequest) -> torch.nn.Module:
    """Every zoo model, freshly built for digits-shaped inputs, in eval mode with non-trivial BN stats."""
    torch.manual_seed(0)
    model = models.build(ZOO[request.param], DIGITS_SHAPE, 10)
    model.train()
    with torch.no_grad():  # move BN running statistics away from their defaults
        for _ in range(3):
            model(torch.randn(32, *DIGITS_SHAPE))
    return model.eval()


@pytest.fixture(scope="session")
def trained_cnn(digits: data.Splits) -> torch.nn.Module:
    """The digits CNN trained as the quickstart does (15 epochs, SGD 0.05)."""
    torch.manual_seed(0)
    model = models.build(config.CNNModel(arch="cnn"), digits.input_shape, digits.num_classes)
    engine.finetune(model, digits, engine.FinetuneConfig(epochs=15, lr=0.05))
    return model.eval()
