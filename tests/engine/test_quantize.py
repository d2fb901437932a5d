"""int8 static quantization of an exported model: smaller, int8 weights, the same predictions."""

from __future__ import annotations

import onnx
import pytest
import torch

from autoprune import config, data, engine, models
from autoprune.errors import ModelError


def test_a_trained_cnn_quantizes_to_int8_that_predicts_as_fp32(tmp_path) -> None:
    splits = data.load(config.DigitsData(), seed=0)
    torch.manual_seed(0)
    model = models.build(config.CNNModel(arch="cnn"), splits.input_shape, splits.num_classes)
    engine.finetune(model, splits, engine.FinetuneConfig(epochs=3, lr=0.05))
    deployed = engine.Preprocessed.for_splits(model, splits).eval()
    engine.export_onnx(deployed, splits.input_shape, tmp_path / "fp32.onnx", metadata={"class_names": "[]"})
    calibration = deployed.raw(splits.train.x[:256]).numpy()
    engine.quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", calibration)
    proto = onnx.load(str(tmp_path / "int8.onnx"))
    assert any(t.data_type == onnx.TensorProto.INT8 for t in proto.graph.initializer)
    assert {p.key for p in proto.metadata_props} == {"class_names", "quantization"}  # the fp32 file's, and how
    assert (tmp_path / "int8.onnx").stat().st_size < 0.6 * (tmp_path / "fp32.onnx").stat().st_size
    share = engine.agreement(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", deployed.raw(splits.test.x).numpy())
    assert share >= 0.97


def test_a_file_onnxruntime_cannot_quantize_is_one_model_error(tmp_path) -> None:
    (tmp_path / "broken.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match=r"^onnxruntime cannot quantize broken.onnx to int8: ") as info:
        engine.quantize_onnx(tmp_path / "broken.onnx", tmp_path / "int8.onnx", torch.zeros(4, 1, 8, 8).numpy())
    assert "\n" not in str(info.value)
