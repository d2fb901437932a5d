"""``autoprune validate``: everything that can go wrong before any training, checked in seconds, with
what the run will do (train or reuse the dense model, how the space is searched)."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import torch
from torch import nn

from .. import data, engine, models
from .._vocab import duration
from ..config import LoadedPipeline, PipelineConfig
from ..errors import ModelError
from ..search import SearchSpace
from ._checks_cache import dense_macs, onnx_difference
from ._dense import build_dense, checkpoint_path, dense_cache_file, dense_cache_key
from ._layout import fit_layout
from ._locations import cache_dir, check_stores, storage_url
from ._placement import pipeline_device
from ._space import build_space
from ._strategies import make_strategy, oneshot_members, search_space

__all__ = ["ValidationReport", "validate_loaded"]

log = logging.getLogger("autoprune")
T = TypeVar("T")


@dataclass
class ValidationReport:
    """What `validate` found: the data and model, the groups (and layers no group can shrink, with
    why), the searched and fixed settings, the checks' figures and notes on what a run will do."""

    data_summary: str
    params: int
    macs: int
    groups: list[engine.Group]
    unprunable: list[tuple[str, str]]
    searched: dict[str, str]
    fixed: dict[str, object]
    zero_prune_max_diff: float
    onnx_max_diff: float | None  # None: not exported (finalize.onnx off, latency measured in torch)
    smallest_params: int
    storage: str
    strategy: str = ""  # how the space will be searched
    device: str = "cpu"  # where a run trains, evaluates and times models, and in what precision it trains
    notes: list[str] = field(default_factory=list)


def _compression_note(config: PipelineConfig) -> str:
    """What compression does to each candidate, and what its figures then mean."""
    compression = config.search.space.compression
    shown = {
        name: "/".join(map(str, getattr(compression, name).extremes())) for name in ("quantize", "weight_clusters")
    }
    where = "the front's models" if config.search.strategy == "oneshot" else "each candidate"
    return (
        f"{where} compressed after the fine-tune (quantize {shown['quantize']}, weight_clusters "
        f"{shown['weight_clusters']}, the shared values fine-tuned for {compression.epochs} epoch(s)): size_bytes "
        "and accuracy are then the deployable file's, an int8 model's latency is measured in onnxruntime"
    )


def _fit_note(fit: engine.FitToLimit, space: SearchSpace) -> str:
    """What ``search.fit_to_limit`` does to this model, shown on the uniform plan."""
    uniform = fit(engine.PrunePlan.uniform(space.searched, 0.5))
    kept = fit.kept(uniform)
    limits = ", ".join(f"max_{metric} {limit:,.0f}" for metric, limit in fit.limits.items())
    ratios = sorted({round(ratio, 2) for ratio in uniform.ratios.values()})
    shown = f"{ratios[0]:.2f}" if len(ratios) == 1 else f"{ratios[0]:.2f}-{ratios[-1]:.2f}"
    return (
        f"search.fit_to_limit scales every plan to fill {limits}; a uniform plan fills it at ratio {shown} "
        f"({fit.costs(kept)['params']:,} params)"
    )


def _oneshot_note(config: PipelineConfig, model: nn.Module, space: SearchSpace, splits: data.Splits) -> str:
    """What a one-shot search will cost here: the supernet's epochs from this machine's training speed
    (the largest, smallest and random subnets each take a forward and backward pass per step), and the
    candidates from the time one takes to extract, recalibrate, score and measure (`_candidate_seconds`)."""
    settings = config.oneshot
    batch = torch.arange(min(len(splits.train), splits.batch_size))
    speed = engine.measure_train_throughput(
        {"dense": model}, splits.train.rows(batch), splits.train.labels(batch), batch_size=splits.batch_size, repeats=3
    )["dense"]
    supernet_s = (2 + settings.random_subnets) * settings.supernet_epochs * len(splits.train) / speed
    scored = settings.candidates * _candidate_seconds(config, model, space, splits)
    finalize_epochs = config.finalize.epochs if config.finalize.epochs is not None else space.fixed["epochs"]
    return (
        f"oneshot: the supernet's {settings.supernet_epochs} epochs take about {duration(supernet_s)}, its "
        f"{settings.candidates} candidates about {duration(scored)} (less where they repeat: an architecture "
        f"scores once); the front's {oneshot_members(config)} best are then fine-tuned {_epochs(finalize_epochs)} each "
        f"(finalize.epochs); the space's fine-tune settings take one value each (lr {space.fixed['lr']:g}, "
        f"{_epochs(space.fixed['epochs'])})"
    )


def _candidate_seconds(config: PipelineConfig, model: nn.Module, space: SearchSpace, splits: data.Splits) -> float:
    """Seconds one candidate from the middle of the space takes to score here, timed in parts, each
    after a first pass (a fresh model's first forward pays one-off setup) and scaled to the pipeline's
    settings: the engine's extraction, BatchNorm recalibration on ``oneshot.calibration_batches``,
    accuracy on the scored validation samples, MACs, and its latency when measured (a table's new
    entries are `_table_note`'s)."""
    settings, shape = config.oneshot, splits.input_shape
    smallest, largest = space.smallest_plan(), space.largest_plan()
    middle = {name: (ratio + largest.ratios.get(name, 0.0)) / 2 for name, ratio in smallest.ratios.items()}
    seconds, subnet = _timed(lambda: _pruned(model, replace(smallest, ratios=middle), shape))
    batch = splits.train.rows(torch.arange(min(len(splits.train), splits.batch_size)))
    val = splits.val if settings.score_samples is None else splits.val.subset(settings.score_samples, seed=0)
    sample = val.subset(min(len(val), 4 * splits.batch_size), seed=0)
    engine.recalibrate_batchnorm(subnet, [batch])  # the first passes, in both modes
    engine.evaluate(subnet, sample.subset(min(len(sample), splits.batch_size), seed=0))
    calibrate, _ = _timed(lambda: engine.recalibrate_batchnorm(subnet, [batch, batch]))
    seconds += calibrate / 2 * min(settings.calibration_batches, math.ceil(len(splits.train) / splits.batch_size))
    scoring, _ = _timed(lambda: engine.evaluate(subnet, sample))
    seconds += scoring * len(val) / max(1, len(sample)) + _timed(lambda: engine.count_macs(subnet, shape))[0]
    if config.latency.mode == "measured":
        pair = {"dense": model, "pruned": subnet}
        seconds += _timed(lambda: engine.measure_latency(pair, shape, config.latency))[0]
    return seconds


def _pruned(model: nn.Module, plan: engine.PrunePlan, shape: tuple[int, ...]) -> nn.Module:
    subnet = copy.deepcopy(model)
    engine.apply_plan(subnet, plan, shape)
    return subnet.eval()


def _timed(work: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = work()
    return time.perf_counter() - start, value


def _epochs(count: int) -> str:
    return f"{count} epoch" if count == 1 else f"{count} epochs"


def _table_note(config: PipelineConfig, model: nn.Module, splits: data.Splits) -> str:
    """What ``latency.mode: table`` will measure: an entry per layer configuration, each about as long as
    the layer's share of a forward pass and the probe it is timed beside, times the calls of one
    measurement (onnxruntime: plus one layer's ONNX export, timed on the first layer)."""
    latency = config.latency
    table = engine.LatencyTable(latency, cache_dir(config) / f"latency-{engine.machine_key(latency)}.json")
    layers = table.layers(model, splits.input_shape)
    quick = latency.replace(warmup=2, repeats=10, mode="measured")
    whole = engine.measure_latency({"dense": model}, splits.input_shape, quick)["dense"]
    probe = engine.probe_layer().to(engine.device_of(model))
    probe_ms = engine.measure_latency({"probe": probe}, engine.PROBE_SHAPE, quick)["probe"]
    per_entry = (whole / max(1, len(layers)) + probe_ms) * (latency.warmup + latency.repeats) / 1e3
    exported = ""
    if latency.runtime == "onnxruntime" and layers:
        start = time.perf_counter()
        engine.LatencyTable(quick).measure_layer(layers[0][1], layers[0][2])
        per_entry += time.perf_counter() - start
        exported = " (an ONNX export each)"
    known = sum(key in table.entries for key, _, _ in layers)
    return (
        f"latency.mode table: {len(table.entries)} layer latencies kept for this machine and runtime; a model has "
        f"{len(layers)} layers ({known} of the dense model's known), each new configuration measured in about "
        f"{_brief(per_entry)}{exported}: up to {_brief(per_entry * len(layers))} for a candidate with all-new "
        "widths, nothing for one seen before"
    )


def _brief(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else duration(seconds, 1)


def _smallest_runs(model: nn.Module, space: SearchSpace, splits: data.Splits) -> tuple[nn.Module, int]:
    """Prune a copy to the smallest model the space reaches and run it forward and backward; if it
    fails, say which groups break the model when pruned alone (its code likely fixes their widths)."""
    plan = space.smallest_plan()
    try:
        smallest = _pruned_and_run(model, plan, splits)
    except Exception as exc:  # user models may hard-code widths that pruning changes
        reason = f"{type(exc).__name__}: {exc}".rstrip()
        if _breaks(model, engine.PrunePlan(), splits):
            raise ModelError(
                f"the model fails a training step (forward, backward) before any pruning: {reason}", key="model"
            ) from exc
        culprits = [
            name for name in plan.ratios if _breaks(model, replace(plan, ratios={name: plan.ratios[name]}), splits)
        ]
        if culprits:
            one = len(culprits) == 1
            quoted = ", ".join(f"'{name}'" for name in culprits)
            raise ModelError(
                f"the model fails once pruned ({reason}); pruned alone, {'group' if one else 'groups'} {quoted} "
                f"{'breaks' if one else 'break'} it: the model's code probably fixes "
                f"{'its width' if one else 'their widths'} "
                f"(a reshape into heads, a hard-coded size); exclude {'it' if one else 'them'} with "
                f"search.space.pruning.exclude: [{', '.join(culprits)}]",
                key="model",
            ) from exc
        raise ModelError(
            f"the model fails once pruned (every group at its highest ratio): {reason}", key="model"
        ) from exc
    return smallest, engine.count_params(smallest)


def _pruned_and_run(model: nn.Module, plan: engine.PrunePlan, splits: data.Splits) -> nn.Module:
    pruned = _pruned(model, plan, splits.input_shape)
    pruned.train()
    pruned(splits.train.x[:4]).sum().backward()
    return pruned.eval()


def _breaks(model: nn.Module, plan: engine.PrunePlan, splits: data.Splits) -> bool:
    try:
        _pruned_and_run(model, plan, splits)
    except Exception:  # the reason was reported for the whole plan
        return True
    return False


def _dense_note(config: PipelineConfig, splits: data.Splits, model: nn.Module) -> str:
    """Whether `autoprune run` will train the dense model or find it in the store's cache."""
    cached = dense_cache_file(cache_dir(config), dense_cache_key(config, splits, model))
    if cached.is_file():
        return f"the dense model is cached ({cached}): its trained weights will be reused"
    return f"the dense model will be trained for {config.model.train.epochs} epochs (cached afterwards)"


def _device_text(device: torch.device, config: PipelineConfig) -> str:
    """The device a run uses (with the GPU's name) and its training precision."""
    name = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
    return f"{name}, training in {config.precision}" + (", finalize compiled" if config.finalize.compile else "")


def validate_loaded(loaded: LoadedPipeline) -> ValidationReport:
    """Load the data, build the model (untrained, or from its checkpoint), resolve the search space
    against its groups, check the constraints can be met, that a zero-ratio prune changes nothing,
    that the smallest model of the space runs, that the stores can be used, and that it exports to ONNX.

    Raises:
        AutoPruneError: The first problem found, with the key it comes from.
    """
    config = loaded.config
    device = pipeline_device(config)  # the checks below run on the CPU: the same answers anywhere
    splits = data.load(config.data, seed=config.seed, base_dir=loaded.base_dir, cache=cache_dir(config))
    model = build_dense(config, splits, base_dir=loaded.base_dir)
    splits, refused = fit_layout(model, config, splits)
    checkpoint = checkpoint_path(config, loaded.base_dir)
    if checkpoint is not None:
        models.load_checkpoint(model, checkpoint)
    model.eval()
    graph = engine.GroupGraph(model, splits.input_shape)
    space = search_space(config, build_space(config, model, graph.groups, splits))
    difference = _zero_prune_difference(model, graph, splits)
    smallest, smallest_params = _smallest_runs(model, space, splits)
    check_stores(config)
    exported = config.finalize.onnx or config.latency.runtime == "onnxruntime"
    onnx_max_diff = onnx_difference(smallest, config, splits) if exported else None
    notes = _notes(config, model, space, splits, dense_known=checkpoint is not None, refused=refused)
    return ValidationReport(
        data_summary=splits.summary(),
        params=engine.count_params(model),
        macs=dense_macs(model, config, splits.input_shape),
        groups=graph.groups,
        unprunable=graph.unprunable(),
        searched={name: repr(dist) for name, dist in space.distributions.items()},
        fixed=space.fixed,
        zero_prune_max_diff=difference,
        onnx_max_diff=onnx_max_diff,
        smallest_params=smallest_params,
        storage=storage_url(config),
        strategy=make_strategy(config).describe(),
        device=_device_text(device, config),
        notes=notes,
    )


def _zero_prune_difference(model: nn.Module, graph: engine.GroupGraph, splits: data.Splits) -> float:
    """0.0: pruning nothing leaves the model's outputs as they were (else a model error)."""
    sample = splits.val.x[:8]
    unchanged = copy.deepcopy(model)
    engine.apply_plan(unchanged, engine.PrunePlan.uniform(graph.groups, 0.0), splits.input_shape)
    with torch.no_grad():
        difference = float((unchanged(sample) - model(sample)).abs().max())
    if difference != 0.0:
        raise ModelError(f"a zero-ratio prune changed the model's outputs by {difference:.2e}", key="model")
    return difference


def _notes(
    config: PipelineConfig,
    model: nn.Module,
    space: SearchSpace,
    splits: data.Splits,
    *,
    dense_known: bool,
    refused: str | None,
) -> list[str]:
    """What validate tells beside its table: the dense training, the strategies' and tables' costs."""
    notes = [] if dense_known else [_dense_note(config, splits, model)]
    if isinstance(space.fit, engine.FitToLimit):
        notes.append(_fit_note(space.fit, space))
    if config.search.strategy == "oneshot":
        notes.append(_oneshot_note(config, model, space, splits))
    if config.latency.mode == "table":
        notes.append(_table_note(config, model, splits))
    if not config.search.space.compression.off:
        notes.append(_compression_note(config))
    if refused is not None:
        notes.append(
            f"the model cannot take channels-last images ({refused}), so it runs in the default layout, "
            "up to 2.6x slower on CPU; .view on a convolution's output is the usual cause (.reshape or .flatten take "
            "either)"
        )
    return notes
