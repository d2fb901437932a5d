"""int8: onnxruntime's static quantization of an exported ONNX model, and how often it agrees with fp32.

Weights are quantized per output channel to int8, activations per tensor to uint8 with ranges
calibrated on a few batches of training inputs (QDQ format, which onnxruntime runs with int8 kernels on
CPU). The quantized file keeps the fp32 file's metadata properties and says how it was made.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import ModelError

__all__ = ["agreement", "quantize_onnx"]

CALIBRATION_BATCH = 64


def quantize_onnx(source: str | Path, target: str | Path, calibration: np.ndarray) -> Path:
    """Write ``source`` quantized to int8 as ``target``, activation ranges calibrated on ``calibration``
    (inputs as the model takes them, a few hundred are enough).

    Raises:
        ModelError: onnxruntime cannot quantize the model.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime ships no type hints
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(
                calibration[i : i + CALIBRATION_BATCH].astype(np.float32)
                for i in range(0, len(calibration), CALIBRATION_BATCH)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"input": batch}

    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autoprune-int8-") as workdir:
        prepared = Path(workdir) / "prepared.onnx"
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(target),
                Batches(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
            )
        except Exception as exc:  # onnxruntime's own errors: an operator it cannot quantize, say
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ModelError(
                f"onnxruntime cannot quantize {source.name} to int8: {type(exc).__name__}: {first}"
            ) from exc
    described = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    described["quantization"] = (
        f"int8 static (onnxruntime QDQ): weights per channel, activations calibrated on {len(calibration)} "
        "training inputs"
    )
    quantized = onnx.load(str(target), load_external_data=False)
    del quantized.metadata_props[:]
    for key, value in described.items():
        quantized.metadata_props.add(key=key, value=value)
    onnx.save(quantized, str(target))
    return target


def agreement(reference: str | Path, candidate: str | Path, inputs: np.ndarray, *, batch: int = 256) -> float:
    """The share of ``inputs`` on which two ONNX files predict the same class (argmax of the logits)."""
    import onnxruntime as ort

    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (reference, candidate)]
    same = 0
    for start in range(0, len(inputs), batch):
        chunk = inputs[start : start + batch].astype(np.float32)
        first, second = (s.run(None, {"input": chunk})[0].argmax(1) for s in sessions)
        same += int((first == second).sum())
    return same / max(1, len(inputs))
