"""Cost measurements: params, MACs, serialized bytes, latency and training throughput on the models'
device (timed with CUDA events on a GPU).

Latency on a shared machine varies up to 2x between processes, so every timing function takes
*several* models and interleaves them call by call in one process: the ratio between them (the
speed-up) is stable even when the absolute numbers drift. Medians, never means.
"""

from __future__ import annotations

import copy
import functools
import io
import statistics
import tempfile
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..config import LatencyConfig
from ._device import Timer, cpu_copy, device_of, device_timer, wall_time
from ._modes import eval_mode

__all__ = [
    "LatencyConfig",
    "count_macs",
    "count_params",
    "interleave",
    "measure_latency",
    "measure_train_throughput",
    "onnx_session",
    "size_bytes",
    "torch_threads",
]


def count_params(model: nn.Module) -> int:
    """Number of parameters (BN running statistics are buffers and do not count)."""
    return sum(parameter.numel() for parameter in model.parameters())


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass on a single input, from torch's flop counter."""
    counter = FlopCounterMode(display=False)
    with eval_mode(model), torch.no_grad(), counter:
        model(torch.zeros(1, *input_shape, device=device_of(model)))
    return counter.get_total_flops() // 2


def size_bytes(model: nn.Module) -> int:
    """Size of the model's state dict as written by ``torch.save``."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads, then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def interleave(
    calls: Mapping[str, Callable[[], object]], warmup: int, repeats: int, *, timer: Timer = wall_time
) -> dict[str, list[float]]:
    """Time each call ``repeats`` times (seconds, by ``timer``), alternating between calls (and their
    order) every round."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            samples[name].append(timer(calls[name]))
    return samples


def _torch_calls(models: Mapping[str, nn.Module], inputs: torch.Tensor) -> dict[str, Callable[[], object]]:
    calls: dict[str, Callable[[], object]] = {}
    for name, model in models.items():
        model.eval()
        calls[name] = functools.partial(_infer, model, inputs)
    return calls


def _infer(model: nn.Module, inputs: torch.Tensor) -> object:
    with torch.inference_mode():
        return model(inputs)


def onnx_providers(device: torch.device) -> list[str]:
    """onnxruntime's execution providers for ``device``: CUDA's first on a GPU when this onnxruntime
    has it, the CPU's always."""
    import onnxruntime as ort

    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]  # type: ignore[list-item]
    return ["CPUExecutionProvider"]


def onnx_session(model: str | bytes, *, threads: int, device: torch.device | None = None) -> Any:
    """An onnxruntime session of an ONNX file (path or bytes) with ``threads`` intra-op threads, on
    ``device``'s provider (see `onnx_providers`)."""
    import onnxruntime as ort  # heavy: imported only when asked for

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=onnx_providers(device or torch.device("cpu")))


def _onnx_calls(
    models: Mapping[str, nn.Module], inputs: torch.Tensor, threads: int, workdir: Path, device: torch.device
) -> dict[str, Callable[[], object]]:
    feed = {"input": inputs.numpy()}
    calls: dict[str, Callable[[], object]] = {}
    for index, (name, model) in enumerate(models.items()):
        exported = _exported(model, tuple(inputs.shape[1:]), workdir / f"model{index}.onnx")
        session = onnx_session(exported, threads=threads, device=device)
        calls[name] = functools.partial(session.run, None, feed)
    return calls


# ONNX files of models still alive, by what they were exported from: the dense model is measured beside
# every candidate, and torch.export takes seconds per model
_EXPORTS: weakref.WeakKeyDictionary[nn.Module, tuple[object, bytes]] = weakref.WeakKeyDictionary()


def _exported(model: nn.Module, input_shape: tuple[int, ...], path: Path) -> bytes:
    """``model`` as ONNX bytes, exported through ``path``, or as exported before while its layers and
    tensors (their storage and in-place versions) are the same."""
    from ._export import export_onnx

    tensors = tuple((t.data_ptr(), t._version) for t in model.state_dict(keep_vars=True).values())
    key = (input_shape, repr(model), tensors)
    kept = _EXPORTS.get(model)
    if kept is not None and kept[0] == key:
        return kept[1]
    export_onnx(cpu_copy(model), input_shape, path, check=False)
    _EXPORTS[model] = (key, path.read_bytes())
    return _EXPORTS[model][1]


def measure_latency(
    models: Mapping[str, nn.Module],
    input_shape: Sequence[int],
    config: LatencyConfig = LatencyConfig(),
    *,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Median latency in milliseconds of each model, measured interleaved in this process on
    ``device`` (by default the first model's; onnxruntime: with its CUDA provider there when it has one)."""
    device = device or device_of(next(iter(models.values())))
    inputs = torch.randn(config.batch_size, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch_threads(config.threads):
        if config.runtime == "onnxruntime":
            with tempfile.TemporaryDirectory(prefix="autoprune-onnx-") as workdir:
                calls = _onnx_calls(models, inputs, config.threads, Path(workdir), device)
                samples = interleave(calls, config.warmup, config.repeats)  # results come back to the host
        else:
            calls = _torch_calls(models, inputs.to(device))
            samples = interleave(calls, config.warmup, config.repeats, timer=device_timer(device))
    return {name: statistics.median(times) * 1e3 for name, times in samples.items()}


def measure_train_throughput(
    models: Mapping[str, nn.Module],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int = 64,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
) -> dict[str, float]:
    """Training samples per second (forward, backward, SGD step) of each model, interleaved.

    Copies are trained, so the models passed in are left untouched.
    """
    device = device_of(next(iter(models.values())))
    batch_x, batch_y = inputs[:batch_size].to(device), targets[:batch_size].to(device)
    calls = {}
    for name, model in models.items():
        trainee = copy.deepcopy(model).train()
        optimizer = torch.optim.SGD(trainee.parameters(), lr=1e-3, momentum=0.9)

        def step(trainee: nn.Module = trainee, optimizer: torch.optim.Optimizer = optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(trainee(batch_x), batch_y).backward()
            optimizer.step()

        calls[name] = step
    with torch_threads(threads or torch.get_num_threads()):
        samples = interleave(calls, warmup, repeats, timer=device_timer(device))
    return {name: len(batch_x) / statistics.median(times) for name, times in samples.items()}
