"""A deployed model: the source's raw inputs in, its preprocessing inside, traced for MLflow."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch
from torch import nn

from autoprune import config, engine, models
from autoprune.errors import ModelError


def test_preprocessing_inside_the_model_matches_preprocessing_by_hand(tmp_path) -> None:
    model = models.build(config.CNNModel(arch="cnn"), (3, 8, 8), 5).eval()
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)
    deployed = engine.Preprocessed(model, (3, 8, 8), input_scale=1 / 255, mean=mean, std=std).eval()
    raw = torch.randint(0, 256, (4, 3, 8, 8)).float()
    by_hand = (raw / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(deployed(raw), model(by_hand), atol=1e-5)
        assert torch.allclose(deployed.raw(by_hand), raw, atol=1e-3)
    engine.export_onnx(deployed, (3, 8, 8), tmp_path / "m.onnx", metadata={"class_names": '["a"]'})
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map == {"class_names": '["a"]'}
    with torch.no_grad():
        assert abs(session.run(None, {"input": raw.numpy()})[0] - model(by_hand).numpy()).max() < 1e-4
    assert b"stack_trace" not in (tmp_path / "m.onnx").read_bytes()  # no source paths of this machine


def test_flat_inputs_are_normalised_per_feature() -> None:
    model = models.build(config.MLPModel(arch="mlp"), (6,), 3).eval()
    deployed = engine.Preprocessed(model, (6,), mean=[float(i) for i in range(6)], std=[2.0] * 6).eval()
    raw = torch.randn(2, 6)
    with torch.no_grad():
        assert torch.allclose(deployed(raw), model((raw - torch.arange(6.0)) / 2), atol=1e-6)


def test_traced_model_is_an_ordinary_module_with_a_free_batch() -> None:
    model = engine.Preprocessed(models.build(config.CNNModel(arch="cnn"), (1, 8, 8), 10), (1, 8, 8))
    module = engine.traced(model, torch.randn(4, 1, 8, 8))
    module.train()
    module.eval()
    assert module.training is False and module(torch.randn(9, 1, 8, 8)).shape == (9, 10)


def test_a_model_whose_batch_tracing_fixes_is_refused() -> None:
    class FixedBatch(nn.Module):  # int(...) makes the batch size a constant of the trace
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(int(x.shape[0]), 2) + x.sum()

    with pytest.raises(ModelError, match=r"^model: cannot trace the model for MLflow: RuntimeError"):
        engine.traced(FixedBatch(), torch.randn(4, 3))
