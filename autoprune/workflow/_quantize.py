"""int8 deployment of a front member: its ONNX file quantized, calibrated and checked on the
pipeline's own data (the training split calibrates, the test split checks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import data, engine
from ..config import LoadedPipeline
from ..errors import ModelError
from ._locations import cache_dir

__all__ = ["MIN_AGREEMENT", "Quantized", "quantize_member"]

MIN_AGREEMENT = 0.99
"""The share of the test split on which the int8 model must predict what the fp32 model does."""


@dataclass(frozen=True)
class Quantized:
    path: Path
    fp32_bytes: int
    int8_bytes: int
    agreement: float  # on the test split, against the fp32 file


def quantize_member(loaded: LoadedPipeline, onnx_file: Path, target: Path) -> Quantized:
    """Quantize a front member's ONNX file (raw inputs in, see `engine.Preprocessed`) to ``target``.

    Raises:
        ModelError: onnxruntime cannot quantize it, or its predictions agree with fp32 on less than
            `MIN_AGREEMENT` of the test split (the file is then removed).
    """
    config = loaded.config
    splits = data.load(config.data, seed=config.seed, base_dir=loaded.base_dir, cache=cache_dir(config))
    calibration = engine.raw_inputs(splits, splits.train, engine.CALIBRATION_SAMPLES)  # what the ONNX file takes
    engine.quantize_onnx(onnx_file, target, calibration)
    share = engine.agreement(onnx_file, target, engine.raw_inputs(splits, splits.test))
    if share < MIN_AGREEMENT:
        target.unlink()
        raise ModelError(
            f"the int8 model predicts what the fp32 model does on only {share:.1%} of the test split "
            f"(at least {MIN_AGREEMENT:.0%} needed); keep the fp32 export"
        )
    return Quantized(target, onnx_file.stat().st_size, target.stat().st_size, share)
