"""``validate``'s answers that take seconds and do not change, kept in the store's cache folder: the
ONNX check (the smallest model of the space exported and run in onnxruntime), per model, exporter and
runtime, and the dense model's MACs, per layers and input shape (torch's flop counter imports its
compiler on first use, about a second)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from torch import nn

from .. import data, engine
from .._files import write_atomically
from ..config import PipelineConfig
from ..errors import ModelError
from ._dense import code_fingerprint
from ._locations import cache_dir

__all__ = ["CHECKS", "dense_macs", "onnx_difference"]

CHECKS = "validate-checks.json"  # in the store's cache folder


def _model_key(model: nn.Module, input_shape: tuple[int, ...], packages: tuple[str, ...], weights: bool) -> str:
    """What an answer about ``model`` follows from: its layers (and weights, when they matter), its
    code, the input shape and the versions of ``packages``."""
    from importlib.metadata import version

    digest = hashlib.sha256(repr(model).encode())
    for name, tensor in model.state_dict().items() if weights else ():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    versions = [version(name) for name in packages]
    digest.update(json.dumps([list(input_shape), code_fingerprint(model), versions]).encode())
    return digest.hexdigest()[:24]


def onnx_difference(model: nn.Module, config: PipelineConfig, splits: data.Splits) -> float:
    """The smallest model's ONNX export checked in onnxruntime, or the answer an earlier validate
    found for the same model, exporter and runtime."""
    key = "onnx:" + _model_key(model, splits.input_shape, ("torch", "onnx", "onnxscript", "onnxruntime"), weights=True)
    return _remembered(config, key, lambda: _export_check(model, config, splits))


def dense_macs(model: nn.Module, config: PipelineConfig, input_shape: tuple[int, ...]) -> int:
    """``engine.count_macs``, or the answer an earlier validate found for the same layers and input."""
    key = "macs:" + _model_key(model, input_shape, ("torch",), weights=False)
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
        write_atomically(path, lambda partial: partial.write_text(json.dumps(checks, indent=0, sort_keys=True)))


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
