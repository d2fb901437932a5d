"""Compression inside the one engine call: a candidate's accuracy, bytes and latency are its deployable's."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from autoprune import config, data, engine, models
from autoprune.errors import ConfigError

FAST = engine.LatencyConfig(warmup=2, repeats=5)


def _candidate(**compression: object) -> engine.Candidate:
    plan = engine.PrunePlan(ratios={"features.0": 0.5, "features.4": 0.5})
    recipe = engine.FinetuneConfig(epochs=1, lr=0.02)
    return engine.Candidate(plan, recipe, engine.CompressionConfig(**compression))


def _raw_val(digits: data.Splits) -> np.ndarray:
    return engine.raw_inputs(digits, digits.val)


@pytest.mark.parametrize("clusters", [4, 16])
def test_a_clustered_candidate_keeps_k_values_per_layer_and_counts_its_packed_bytes(
    trained_cnn: torch.nn.Module, digits: data.Splits, clusters: int, tmp_path: Path
) -> None:
    result = engine.evaluate_candidate(
        trained_cnn, _candidate(weight_clusters=clusters), digits, measure=engine.MeasureConfig(FAST)
    )
    assert result.compressed is not None and result.compressed.kind == "shared"
    assert result.model is not None
    assert all(1 < count <= clusters for count in engine.distinct_weights(result.model).values())
    assert result.size_bytes == len(result.compressed.data) < engine.size_bytes(result.model) / 3
    assert result.fp32_val_accuracy is not None
    assert result.val_accuracy == engine.evaluate(result.model, digits.val).accuracy  # the shared model's own
    assert result.metrics()["fp32_val_accuracy"] == result.fp32_val_accuracy
    path = tmp_path / "m.shared"  # the bytes are a loadable file that gives the deployed model back
    path.write_bytes(result.compressed.data)
    pruned = copy.deepcopy(result.model)
    loaded = engine.load_shared(path, lambda: engine.Preprocessed.for_splits(copy.deepcopy(pruned), digits))
    with torch.no_grad():
        expected = result.model.eval()(digits.val.x[:16])
        assert torch.allclose(loaded(torch.from_numpy(_raw_val(digits)[:16])), expected, atol=1e-4)


def test_an_int8_candidate_is_judged_as_the_int8_file_in_onnxruntime(
    trained_cnn: torch.nn.Module, digits: data.Splits
) -> None:
    result = engine.evaluate_candidate(
        trained_cnn, _candidate(quantize="int8"), digits, measure=engine.MeasureConfig(FAST)
    )
    compressed = result.compressed
    assert compressed is not None and compressed.kind == "onnx-int8"
    proto = onnx.load_from_string(compressed.data)
    assert any(t.data_type == onnx.TensorProto.INT8 for t in proto.graph.initializer)
    assert result.size_bytes == len(compressed.data)
    session = ort.InferenceSession(compressed.data, providers=["CPUExecutionProvider"])
    predicted = session.run(None, {"input": _raw_val(digits)})[0].argmax(1)
    assert result.val_accuracy == pytest.approx(float((predicted == digits.val.y.numpy()).mean()))
    assert abs(result.val_accuracy - (result.fp32_val_accuracy or 0)) <= 0.03
    assert result.latency_ms == compressed.latency_ms > 0  # timed in onnxruntime ...
    assert result.dense_latency_ms == compressed.dense_latency_ms > 0  # ... beside the dense model's ONNX file
    test = engine.evaluate_deployed(result, digits, digits.test)
    assert test.samples == len(digits.test) and 0.8 < test.accuracy <= 1.0


def test_an_uncompressed_candidate_is_measured_as_before(trained_cnn: torch.nn.Module, digits: data.Splits) -> None:
    result = engine.evaluate_candidate(trained_cnn, _candidate(), digits, measure=engine.MeasureConfig(FAST))
    assert result.compressed is None and result.fp32_val_accuracy is None
    assert result.model is not None and result.size_bytes == engine.size_bytes(result.model)
    assert "fp32_val_accuracy" not in result.metrics()


def test_clustering_then_int8_gives_the_int8_file(digits: data.Splits) -> None:
    torch.manual_seed(0)
    dense = models.build(config.CNNModel(arch="cnn", widths=[8, 16]), digits.input_shape, digits.num_classes).eval()
    result = engine.evaluate_candidate(
        dense, _candidate(weight_clusters=16, quantize="int8", epochs=0), digits, measure=engine.MeasureConfig(FAST)
    )
    assert result.compressed is not None and result.compressed.kind == "onnx-int8"
    assert result.model is not None and all(n <= 16 for n in engine.distinct_weights(result.model).values())


def test_bad_compression_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="weight_clusters"):
        engine.CompressionConfig(weight_clusters=1)
    with pytest.raises(ConfigError, match="quantize"):
        engine.CompressionConfig(quantize="int4")
    assert engine.CompressionConfig(weight_clusters=16, quantize="int8").describe() == "16 shared values + int8"
    assert not engine.CompressionConfig().active
