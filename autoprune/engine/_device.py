"""Where models run and in what precision they train: the pipeline's ``device`` and ``precision``.

A model's device is where its parameters are (`device_of`); everything the engine makes for a model
(example inputs, index tensors, latency inputs) is made there, and data comes to it batch by batch
from the splits (`data.TensorSplit.on`: pinned host memory, copies that do not block). Mixed precision
is for training only (`autocast`, with a gradient scaler for fp16): evaluation, calibration and
latency stay in float32, so accuracies compare across precisions.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from .._vocab import DEVICE_PATTERN, Precision
from ..errors import ConfigError

__all__ = [
    "DEVICE_PATTERN",
    "Timer",
    "autocast",
    "cpu_copy",
    "device_of",
    "device_timer",
    "grad_scaler",
    "resolve_device",
    "wall_time",
]

Timer = Callable[[Callable[[], object]], float]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str, *, key: str = "device") -> torch.device:
    """The device ``spec`` names on this machine: ``auto`` is the first CUDA device when there is one,
    else the CPU. Raises `ConfigError` (with ``key``) when the device is not here."""
    if not re.fullmatch(DEVICE_PATTERN, spec):
        raise ConfigError(f"must be one of auto, cpu, cuda, cuda:N or mps, but got {spec!r}", key=key)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            built = "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}"
            raise ConfigError(
                f"{spec!r} was asked for, but this machine has no usable CUDA device (torch {torch.__version__} "
                f"was built {built}); use device: auto or cpu",
                key=key,
            )
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"{spec!r} was asked for, but this machine has {count} CUDA device(s): cuda:0..cuda:{count - 1}",
                key=key,
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{spec!r} was asked for, but Apple's MPS is not available here; use auto or cpu", key=key)
    return device


def device_of(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters (or, without any, its buffers) are; the CPU for an empty model."""
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def cpu_copy(model: nn.Module) -> nn.Module:
    """``model`` itself when it is on the CPU, else a copy there (for export, tracing, saving as a
    deployable file): the model being trained stays where it is."""
    if device_of(model).type == "cpu":
        return model
    return copy.deepcopy(model).cpu()


def autocast(device: torch.device, precision: Precision) -> AbstractContextManager[object]:
    """Autocast to ``precision`` on ``device`` for a training step (a no-op for fp32)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device, precision: Precision) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (bf16 has float32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def device_timer(device: torch.device) -> Timer:
    """How to time one call on ``device``: CUDA events recorded around it and waited for on CUDA
    (the call only queues the work), the wall clock elsewhere."""
    if device.type != "cuda":
        return wall_time
    return lambda call: _cuda_time(call, device)


def wall_time(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _cuda_time(call: Callable[[], object], device: torch.device) -> float:
    with torch.cuda.device(device):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / 1e3
