"""Compression after pruning, inside the one engine call: weight sharing and int8 quantization of a
fine-tuned candidate, judged as it would be deployed.

`compress` turns the candidate's model into its deployable artifact and measures that: with
``weight_clusters`` the model's layers share that many values each (k-means, the shared values
fine-tuned, distilled from the model before sharing), written as packed indices plus codebooks; with
``quantize: int8`` the model (clustered or not) is exported to ONNX and quantized statically by
onnxruntime, calibrated on training batches. Accuracy on validation is the artifact's own (the int8
file run in onnxruntime), size is the artifact's bytes, and an int8 model's latency is measured in
onnxruntime, interleaved with the dense model's ONNX file there.
"""

from __future__ import annotations

import copy
import functools
import statistics
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from .._vocab import DEPLOYABLE_FILES
from ..config import CompressionConfig, FinetuneConfig, LatencyConfig
from ..data import Splits, TensorSplit
from ._deploy import Preprocessed
from ._evaluate import INFERENCE_BATCH, evaluate
from ._export import export_onnx
from ._finetune import finetune
from ._measure import interleave, onnx_session, torch_threads
from ._quantize import quantize_onnx
from ._share import save_shared, share_weights, unshare

__all__ = ["CALIBRATION_SAMPLES", "Compressed", "CompressionConfig", "compress", "onnx_accuracy", "raw_inputs"]

CALIBRATION_SAMPLES = 512  # training inputs that calibrate int8 activation ranges
SHARE_DISTILL_ALPHA = 0.5  # the shared values learn half from the labels, half from the model before sharing


@dataclass(frozen=True)
class Compressed:
    """A candidate's deployable artifact: ``kind`` ``shared`` (packed weights, see `save_shared`) or
    ``onnx-int8``, its bytes as written, and what was measured on it."""

    kind: Literal["shared", "onnx-int8"]
    data: bytes = b""
    val_accuracy: float = float("nan")
    val_loss: float = float("nan")
    latency_ms: float | None = None  # int8: in onnxruntime, beside ...
    dense_latency_ms: float | None = None  # ... the dense model's ONNX file

    @property
    def file_name(self) -> str:
        return DEPLOYABLE_FILES[self.kind]

    @property
    def size_bytes(self) -> int:
        return len(self.data)


def compress(
    model: nn.Module,
    dense: nn.Module,
    splits: Splits,
    config: CompressionConfig,
    *,
    recipe: FinetuneConfig,
    latency: LatencyConfig,
) -> Compressed:
    """Compress ``model`` (fine-tuned, modified in place when its weights are shared) as ``config``
    says; ``recipe`` is the candidate's fine-tune (its batch size, training share, seed and precision
    serve the shared values' fine-tune), ``latency`` how an int8 model is timed beside ``dense``."""
    shared = None
    if config.weight_clusters is not None:
        shared = _share(model, splits, config, recipe)
    if config.quantize != "int8":
        assert shared is not None  # compress is called only when config.active
        return shared
    with tempfile.TemporaryDirectory(prefix="autoprune-compress-") as workdir:
        fp32, int8 = Path(workdir) / "model.onnx", Path(workdir) / "model.int8.onnx"
        export_onnx(Preprocessed.for_splits(model, splits), splits.input_shape, fp32, check=False)
        quantize_onnx(fp32, int8, raw_inputs(splits, splits.train, CALIBRATION_SAMPLES))
        data = int8.read_bytes()
    accuracy, loss = onnx_accuracy(data, splits, splits.val)
    timed = _int8_latency(data, dense, splits, latency)
    return Compressed("onnx-int8", data, accuracy, loss, timed["int8"], timed["dense"])


def _share(model: nn.Module, splits: Splits, config: CompressionConfig, recipe: FinetuneConfig) -> Compressed:
    """Share ``model``'s weights among ``config.weight_clusters`` values per layer, fine-tune the shared
    values, turn them back into plain weights (each layer holding that many values) and pack them."""
    assert config.weight_clusters is not None
    reference = copy.deepcopy(model).eval()
    share_weights(model, config.weight_clusters)
    if config.epochs:
        shared_recipe = recipe.replace(
            epochs=config.epochs, lr=config.lr, distill_alpha=SHARE_DISTILL_ALPHA, ema_decay=0.0, compile=False
        )
        finetune(model, splits, shared_recipe, teacher=reference)
    unshare(model).eval()
    with tempfile.TemporaryDirectory(prefix="autoprune-shared-") as workdir:
        path = Path(workdir) / "model.shared"
        save_shared(Preprocessed.for_splits(model, splits), path, metadata={"clusters": config.weight_clusters})
        data = path.read_bytes()
    val = evaluate(model, splits.val)
    return Compressed("shared", data, val.accuracy, val.loss)


def raw_inputs(splits: Splits, split: TensorSplit, count: int | None = None) -> np.ndarray:
    """Up to ``count`` inputs of ``split`` (evenly spread over it) as the data source's raw values: what
    a deployed model (`Preprocessed`) takes."""
    inputs = split.x if count is None else split.x[:: max(1, len(split.x) // count)][:count]
    return _raw(splits, inputs)


def onnx_accuracy(model: bytes | str | Path, splits: Splits, split: TensorSplit) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of an ONNX file (raw inputs in, logits out) on ``split``."""
    session = onnx_session(model if isinstance(model, bytes) else str(model), threads=torch.get_num_threads())
    correct, loss_sum = 0, 0.0
    for start in range(0, len(split), INFERENCE_BATCH):
        rows = torch.arange(start, min(start + INFERENCE_BATCH, len(split)))
        logits = torch.from_numpy(session.run(None, {"input": _raw(splits, split.rows(rows))})[0])
        targets = split.labels(rows).cpu()
        loss_sum += float(nn.functional.cross_entropy(logits, targets, reduction="sum"))
        correct += int((logits.argmax(1) == targets).sum())
    count = max(len(split), 1)
    return correct / count, loss_sum / count


def _raw(splits: Splits, inputs: torch.Tensor) -> np.ndarray:
    return Preprocessed.for_splits(nn.Identity(), splits).raw(inputs.cpu()).numpy().astype(np.float32)


_DENSE_ONNX: weakref.WeakKeyDictionary[nn.Module, bytes] = weakref.WeakKeyDictionary()


def _dense_onnx(dense: nn.Module, splits: Splits) -> bytes:
    """``dense`` as a deployed ONNX file, exported once per dense model."""
    if dense not in _DENSE_ONNX:
        with tempfile.TemporaryDirectory(prefix="autoprune-dense-") as workdir:
            path = Path(workdir) / "dense.onnx"
            export_onnx(Preprocessed.for_splits(dense, splits), splits.input_shape, path, check=False)
            _DENSE_ONNX[dense] = path.read_bytes()
    return _DENSE_ONNX[dense]


def _int8_latency(int8: bytes, dense: nn.Module, splits: Splits, config: LatencyConfig) -> dict[str, float]:
    """Median milliseconds of the int8 file and of the dense model's ONNX file in onnxruntime, interleaved."""
    inputs = torch.randn(config.batch_size, *splits.input_shape, generator=torch.Generator().manual_seed(0))
    feed = {"input": inputs.numpy()}
    calls = {
        name: functools.partial(onnx_session(data, threads=config.threads).run, None, feed)
        for name, data in (("int8", int8), ("dense", _dense_onnx(dense, splits)))
    }
    with torch_threads(config.threads):
        samples = interleave(calls, config.warmup, config.repeats)
    return {name: statistics.median(times) * 1e3 for name, times in samples.items()}
