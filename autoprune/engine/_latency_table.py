"""A latency lookup table (NetAdapt, Yang et al., ECCV 2018): a model's latency predicted as the sum of
its layers' latencies, each measured once on the target runtime, plus a fitted constant.

Every leaf layer a forward pass runs (convolutions, norms, activations, pooling, linear layers) is a
table entry, keyed by the layer as it is configured (its channels, kernel, stride, groups) and the shape
of its input; an entry missing from the table is measured when first needed, on the same runtime,
batch size and threads as the pipeline's latency, and kept in a JSON file per runtime and machine, so
later runs and later candidates reuse it. What the layers do not account for (the runtime's per-call
cost, functional operations such as residual adds) is fitted: predicted = scale x the layers' sum +
constant, by least squares on a few models measured whole (the dense model and uniform prunings of it).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import platform
import statistics
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from .._files import write_atomically
from ..config import LatencyConfig
from ._device import cpu_copy, device_of, device_timer
from ._measure import interleave, measure_latency, onnx_session, torch_threads
from ._modes import eval_mode

__all__ = ["LatencyTable", "machine_key", "rank_agreement"]


def machine_key(config: LatencyConfig, device: torch.device | None = None) -> str:
    """What a table's latencies hold for: this machine's processor (and the GPU, on one), torch's
    version, the runtime, the batch size and the threads."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = cpuinfo.read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        cpu = names[0] if names else cpu
    facts: list[object] = [cpu, os.cpu_count(), torch.__version__, config.runtime, config.batch_size, config.threads]
    if device is not None and device.type != "cpu":  # only then, so the keys of CPU tables stay valid
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
        facts.append(name)
    text = json.dumps(facts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _leaves(model: nn.Module) -> list[nn.Module]:
    return [module for module in model.modules() if not any(True for _ in module.children())]


class LatencyTable:
    """Per-layer latencies of one runtime on this machine (see the module docstring).

    Args:
        config: The pipeline's latency settings (runtime, batch size, threads, warm-up, repeats).
        path: The JSON file the table is kept in (None: in memory only).
        device: Where layers are timed (the models' device).
    """

    def __init__(self, config: LatencyConfig, path: Path | None = None, device: torch.device | None = None) -> None:
        self.config = config
        self.path = path
        self.device = device or torch.device("cpu")
        self.entries: dict[str, float] = {}
        self.scale, self.constant = 1.0, 0.0
        self.measured = 0  # entries measured by this table (not read from its file)
        if path is not None and path.is_file():
            self.entries = {str(k): float(v) for k, v in json.loads(path.read_text()).get("entries", {}).items()}

    def layers(self, model: nn.Module, input_shape: Sequence[int]) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
        """Every leaf layer one forward pass of ``model`` runs: its table key, itself, its input shape
        (without the batch dimension); a layer run twice counts twice."""
        calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []

        def record(module: nn.Module, inputs: tuple[object, ...]) -> None:
            if inputs and isinstance(inputs[0], torch.Tensor):
                shape = tuple(int(d) for d in inputs[0].shape[1:])
                calls.append((f"{type(module).__name__}|{module!r}|{shape}", module, shape))

        handles = [leaf.register_forward_pre_hook(record) for leaf in _leaves(model)]
        try:
            with eval_mode(model), torch.no_grad():
                model(torch.zeros(1, *input_shape, device=device_of(model)))
        finally:
            for handle in handles:
                handle.remove()
        return calls

    def layer_sum(self, model: nn.Module, input_shape: Sequence[int]) -> float:
        """The sum of ``model``'s layers' latencies in milliseconds, measuring the ones not in the table."""
        total = 0.0
        for key, module, shape in self.layers(model, input_shape):
            if key not in self.entries:
                self.entries[key] = self.measure_layer(module, shape)
                self.measured += 1
            total += self.entries[key]
        return total

    def measure_layer(self, module: nn.Module, shape: tuple[int, ...]) -> float:
        """One layer's latency in milliseconds on inputs of ``shape`` (batch excluded), as an entry is
        measured (onnxruntime: exported to ONNX first, which takes longer than timing it)."""
        layer = copy.deepcopy(module).eval().to(self.device)  # parameterless layers too
        if self.config.runtime == "onnxruntime":
            return self._measure_onnx(layer, shape)
        device = self.device
        inputs = torch.randn(self.config.batch_size, *shape, generator=torch.Generator().manual_seed(0)).to(device)
        with torch_threads(self.config.threads), torch.inference_mode():
            timer = device_timer(device)
            samples = interleave({"layer": lambda: layer(inputs)}, self.config.warmup, self.config.repeats, timer=timer)
        return statistics.median(samples["layer"]) * 1e3

    def _measure_onnx(self, layer: nn.Module, shape: tuple[int, ...]) -> float:
        """One layer in onnxruntime, exported by torch's TorchScript exporter: a few milliseconds for one
        layer where torch.export and onnxscript take about a second, and a table measures hundreds.
        A layer that exporter refuses goes through the usual export."""
        inputs = torch.randn(self.config.batch_size, *shape, generator=torch.Generator().manual_seed(0))
        with tempfile.TemporaryDirectory(prefix="autoprune-layer-") as workdir:
            path = Path(workdir) / "layer.onnx"
            try:
                with warnings.catch_warnings(), eval_mode(layer):
                    warnings.simplefilter("ignore")
                    torch.onnx.export(cpu_copy(layer), (inputs,), str(path), dynamo=False, input_names=["input"])
            except Exception:  # any failure of this exporter: the usual one decides
                return measure_latency({"layer": layer}, shape, self.config, device=self.device)["layer"]
            session = onnx_session(str(path), threads=self.config.threads, device=self.device)
        call = functools.partial(session.run, None, {"input": inputs.numpy()})
        with torch_threads(self.config.threads):
            samples = interleave({"layer": call}, self.config.warmup, self.config.repeats)
        return statistics.median(samples["layer"]) * 1e3

    def fit(self, models: Sequence[nn.Module], input_shape: Sequence[int]) -> None:
        """Fit the scale and constant on ``models`` measured whole, each beside the first (the dense
        model) as a trial is measured: the first's latency is the median over the pairs, each other's
        its ratio to the first in its pair times that (so a slower second of the machine shifts no
        point, and every model runs in the cache regime of a pair, as the front's check measures it)."""
        reference, others = models[0], list(models[1:])
        pairs = [measure_latency({"dense": reference, "model": m}, input_shape, self.config) for m in others]
        dense_ms = (
            statistics.median([p["dense"] for p in pairs])
            if pairs
            else measure_latency({"dense": reference}, input_shape, self.config)["dense"]
        )
        actual = [dense_ms, *(p["model"] / p["dense"] * dense_ms for p in pairs)]
        sums = [self.layer_sum(model, input_shape) for model in models]
        if len(sums) < 2 or max(sums) - min(sums) < 1e-9:
            self.scale, self.constant = 1.0, statistics.median(a - s for a, s in zip(actual, sums))
            return
        mean_x, mean_y = statistics.fmean(sums), statistics.fmean(actual)
        covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(sums, actual))
        self.scale = max(0.0, covariance / sum((x - mean_x) ** 2 for x in sums))
        self.constant = mean_y - self.scale * mean_x

    def predict(self, model: nn.Module, input_shape: Sequence[int]) -> float:
        """``model``'s latency in milliseconds: scale x the sum of its layers' + constant."""
        return max(1e-6, self.scale * self.layer_sum(model, input_shape) + self.constant)

    def save(self) -> None:
        """Write the table's entries to its file (atomically; a table in memory does nothing)."""
        if self.path is None:
            return
        record = {"runtime": self.config.runtime, "batch_size": self.config.batch_size, "entries": self.entries}
        write_atomically(self.path, lambda partial: partial.write_text(json.dumps(record, indent=0, sort_keys=True)))


def rank_agreement(predicted: Mapping[str, float], measured: Mapping[str, float]) -> tuple[float, float]:
    """Spearman's rank correlation and the median relative error of ``predicted`` against
    ``measured`` latencies (by the same names). The correlation is NaN where it is undefined: fewer
    than two names, or all of one side equal (two front members of one architecture)."""
    names = [name for name in predicted if name in measured]
    if len(names) < 2:
        return float("nan"), float("nan")
    errors = [abs(predicted[n] - measured[n]) / measured[n] for n in names]
    if len({predicted[n] for n in names}) < 2 or len({measured[n] for n in names}) < 2:
        return float("nan"), statistics.median(errors)
    from scipy.stats import spearmanr  # scikit-learn's dependency; imported only for this check

    correlation = spearmanr([predicted[n] for n in names], [measured[n] for n in names]).statistic
    return float(correlation), statistics.median(errors)
