"""``validate``'s answers that take seconds and do not change, kept in the store's cache folder: the
ONNX check (the smallest model of the space exported and run in onnxruntime), per model, exporter and
runtime, and the dense model's MACs, per layers and input shape (torch's flop counter imports its
compiler on first use, about a second)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from torch import nn

from .. import data, engine
from ..config import PipelineConfig
from ..errors import ModelError
from ._dense import code_fingerprint
from ._locations import cache_dir

__all__ = ["CHECKS", "dense_macs", "onnx_difference"]

CHECKS = "validate-checks.json"  # in the store's cache folder


def _onnx_key(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    """What an ONNX check's answer follows from: the model's layers, weights and code, the input
    shape, and the versions of the exporter and of onnxruntime."""
    from importlib.metadata import version

    digest = hashlib.sha256(repr(model).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    versions = [version(name) for name in ("torch", "onnx", "onnxscript", "onnxruntime")]
    digest.update(json.dumps([list(input_shape), code_fingerprint(model), versions]).encode())
    return digest.hexdigest()[:24]


def onnx_difference(model: nn.Module, config: PipelineConfig, splits: data.Splits) -> float:
    """The smallest model's ONNX export checked in onnxruntime, or the answer an earlier validate
    found for the same model, exporter and runtime."""
    key = "onnx:" + _onnx_key(model, splits.input_shape)
    return _remembered(config, key, lambda: _export_check(model, config, splits))


def dense_macs(model: nn.Module, config: PipelineConfig, input_shape: tuple[int, ...]) -> int:
    """``engine.count_macs``, or the answer an earlier validate found for the same layers and input."""
    from importlib.metadata import version

    digest = hashlib.sha256(repr(model).encode())
    digest.update(json.dumps([list(input_shape), code_fingerprint(model), version("torch")]).encode())
    key = "macs:" + digest.hexdigest()[:24]
    return int(_remembered(config, key, lambda: engine.count_macs(model, input_shape)))


def _remembered(config: PipelineConfig, key: str, compute: Callable[[], float]) -> float:
    """The answer kept under ``key``, else ``compute()``, kept when the store's cache folder exists
    (validate creates no folder)."""
    checks = cache_dir(config) / CHECKS
    known = _read_checks(checks)
    if key in known:
        return known[key]
    answer = compute()
    if checks.parent.is_dir():
        _write_checks(checks, {**known, key: answer})
    return answer


def _read_checks(path: Path) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError, TypeError):  # none yet, or damaged: check again
        return {}


def _write_checks(path: Path, checks: dict[str, float]) -> None:
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps(checks, indent=0, sort_keys=True))
        os.replace(partial, path)


def _export_check(model: nn.Module, config: PipelineConfig, splits: data.Splits) -> float:
    with tempfile.TemporaryDirectory(prefix="autoprune-validate-") as workdir:
        try:
            return engine.export_onnx(model, splits.input_shape, Path(workdir) / "model.onnx")
        except ModelError as exc:
            hint = (
                ""
                if config.latency.runtime == "onnxruntime"
                else "; or set finalize.onnx: false to keep front models as plan and weights only"
            )
            raise ModelError(exc.message + hint, key=exc.key or "finalize.onnx") from exc
