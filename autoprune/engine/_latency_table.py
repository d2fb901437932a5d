"""A latency lookup table (NetAdapt, Yang et al., ECCV 2018): a model's latency predicted as the sum of
its layers' latencies, each measured once on the target runtime, plus a fitted constant.

Every leaf layer a forward pass runs (convolutions, norms, activations, pooling, linear layers) is a
table entry, keyed by the layer as it is configured (its channels, kernel, stride, groups) and the shape
of its input; an entry missing from the table is measured when first needed, on the same runtime,
batch size and threads as the pipeline's latency, and kept in a JSON file per runtime and machine, so
later runs and later candidates reuse it. What the layers do not account for (the runtime's per-call
cost, functional operations such as residual adds) is fitted: predicted = scale x the layers' sum +
constant, by least squares on a few models measured whole (the dense model and uniform prunings of it).

Each layer is timed beside a fixed probe layer, call for call, and kept as its ratio to the probe times
the probe's latency when the table was begun: on a shared machine the same layer measured a minute
later takes up to 1.6x longer, which the ratio cancels (BENCHMARKS.md, the latency table), and entries
measured in different runs stay in one unit.
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._files import write_atomically
from ..config import LatencyConfig
from ._device import cpu_copy, device_of, device_timer, wall_time
from ._measure import interleave, measure_latency, onnx_session, torch_threads
from ._modes import eval_mode

__all__ = ["FIT_PASSES", "PROBE_SHAPE", "LatencyTable", "machine_key", "probe_layer", "rank_agreement"]

FIT_PASSES = 2  # each model of the fit measured beside the dense model twice: one pass moved the error by 2 points
PROBE_SHAPE = (16, 8, 8)  # the probe's input (batch excluded): about as much work as a zoo model's mean layer


def probe_layer() -> nn.Module:
    """The fixed layer every entry is timed beside (see the module docstring); its weights, which do
    not change its latency, are left as initialised."""
    return nn.Conv2d(PROBE_SHAPE[0], PROBE_SHAPE[0], 3, padding=1).eval()


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
        self.probe_ms: float | None = None  # the probe's latency when the table was begun (its entries' unit)
        self._probe: Callable[[], object] | None = None
        record = json.loads(path.read_text()) if path is not None and path.is_file() else {}
        if "probe_ms" in record:  # a table kept before entries were timed beside the probe is begun again
            self.probe_ms = float(record["probe_ms"])
            self.entries = {str(k): float(v) for k, v in record.get("entries", {}).items()}

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
        """One layer's latency in milliseconds on inputs of ``shape`` (batch excluded), timed beside the
        probe and kept in the table's unit (onnxruntime: exported to ONNX first, which takes longer than
        timing it)."""
        layer = copy.deepcopy(module).eval().to(self.device)  # parameterless layers too
        if self.config.runtime == "onnxruntime":
            return self._measure_onnx(layer, shape)
        inputs = self._inputs(shape).to(self.device)
        return self._beside_probe(lambda: layer(inputs))

    def _inputs(self, shape: Sequence[int]) -> torch.Tensor:
        return torch.randn(self.config.batch_size, *shape, generator=torch.Generator().manual_seed(0))

    def _beside_probe(self, call: Callable[[], object]) -> float:
        """``call``'s latency: the median of its ratio to the probe's, call for call, times the probe's
        latency in milliseconds when the table was begun (measured now on a new table)."""
        probe = self._probe_call()
        timer = device_timer(self.device) if self.config.runtime == "torch" else wall_time
        warmup, repeats = self.config.warmup, self.config.repeats
        with torch_threads(self.config.threads), torch.inference_mode():
            if self.probe_ms is None:
                alone = interleave({"probe": probe}, warmup, 3 * repeats, timer=timer)["probe"]
                self.probe_ms = statistics.median(alone) * 1e3
            samples = interleave({"layer": call, "probe": probe}, warmup, repeats, timer=timer)
        ratios = [layer / max(probe, 1e-9) for layer, probe in zip(samples["layer"], samples["probe"])]
        return statistics.median(ratios) * self.probe_ms

    def _probe_call(self) -> Callable[[], object]:
        """One call of the probe on the table's runtime (an onnxruntime session built once)."""
        if self._probe is None:
            probe, inputs = probe_layer(), self._inputs(PROBE_SHAPE)
            if self.config.runtime == "onnxruntime":
                session = self._onnx_layer(probe, inputs)
                assert session is not None, "the probe, a plain convolution, exports"
                self._probe = functools.partial(session.run, None, {"input": inputs.numpy()})
            else:
                probe, inputs = probe.to(self.device), inputs.to(self.device)
                self._probe = functools.partial(probe, inputs)
        return self._probe

    def _measure_onnx(self, layer: nn.Module, shape: tuple[int, ...]) -> float:
        """One layer in onnxruntime, exported by torch's TorchScript exporter: a few milliseconds for one
        layer where torch.export and onnxscript take about a second, and a table measures hundreds.
        A layer that exporter refuses goes through the usual export and is timed alone."""
        inputs = self._inputs(shape)
        session = self._onnx_layer(layer, inputs)
        if session is None:
            return measure_latency({"layer": layer}, shape, self.config, device=self.device)["layer"]
        return self._beside_probe(functools.partial(session.run, None, {"input": inputs.numpy()}))

    def _onnx_layer(self, layer: nn.Module, inputs: torch.Tensor) -> Any:
        """An onnxruntime session of ``layer`` alone, or None where the quick exporter refuses it."""
        with tempfile.TemporaryDirectory(prefix="autoprune-layer-") as workdir:
            path = Path(workdir) / "layer.onnx"
            try:
                with warnings.catch_warnings(), eval_mode(layer):
                    warnings.simplefilter("ignore")
                    torch.onnx.export(cpu_copy(layer), (inputs,), str(path), dynamo=False, input_names=["input"])
            except Exception:  # any failure of this exporter: the usual one decides
                return None
            return onnx_session(str(path), threads=self.config.threads, device=self.device)

    def fit(self, models: Sequence[nn.Module], input_shape: Sequence[int]) -> None:
        """Fit the scale and constant on ``models`` measured whole, each beside the first (the dense
        model) as a trial is measured, in `FIT_PASSES` passes over them: the first's latency is the
        median over the pairs, each other's the mean of its ratios to the first in its pairs times that
        (so a slower second of the machine shifts no point, and every model runs in the cache regime
        of a pair, as the front's check measures it)."""
        reference, others = models[0], list(models[1:])
        passes = [
            [measure_latency({"dense": reference, "model": m}, input_shape, self.config) for m in others]
            for _ in range(FIT_PASSES)
        ]
        pairs = [pair for one_pass in passes for pair in one_pass]
        dense_ms = (
            statistics.median([p["dense"] for p in pairs])
            if pairs
            else measure_latency({"dense": reference}, input_shape, self.config)["dense"]
        )
        ratios = [statistics.fmean(p["model"] / p["dense"] for p in pairs_of_one) for pairs_of_one in zip(*passes)]
        actual = [dense_ms, *(ratio * dense_ms for ratio in ratios)]
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
        record = {
            "runtime": self.config.runtime,
            "batch_size": self.config.batch_size,
            "probe_ms": self.probe_ms,
            "entries": self.entries,
        }
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
