"""``autoprune validate``: everything that can go wrong before any training, checked in seconds."""

from __future__ import annotations

import copy
import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from . import data, engine, models
from ._dense import build_dense, checkpoint_path, dense_cache_file, dense_cache_key, fit_layout
from .config import Constraints, LoadedPipeline, PipelineConfig
from .errors import ConfigError, ModelError
from .search import SearchSpace

__all__ = ["Preflight", "build_space", "check_constraints", "preflight"]

log = logging.getLogger("autoprune")


@dataclass
class Preflight:
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
    notes: list[str] = field(default_factory=list)


def check_constraints(
    model: nn.Module, space: SearchSpace, constraints: Constraints, input_shape: tuple[int, ...]
) -> None:
    """Refuse size constraints that no candidate of the space can meet (every trial would be infeasible).

    Raises:
        ConfigError: Naming the constraint, its limit and the smallest value the space reaches.
    """
    limits = {"params": constraints.max_params, "macs": constraints.max_macs, "size_bytes": constraints.max_size_bytes}
    if all(limit is None for limit in limits.values()):
        return
    smallest = copy.deepcopy(model)
    engine.apply_plan(smallest, space.smallest_plan(), input_shape)
    reached = {
        "params": engine.count_params(smallest),
        "macs": engine.count_macs(smallest, input_shape),
        "size_bytes": engine.size_bytes(smallest),
    }
    for metric, limit in limits.items():
        if limit is not None and reached[metric] > limit:
            raise ConfigError(
                f"{limit:,} can never hold: the smallest model this search space reaches (every group at its "
                f"highest ratio) has {reached[metric]:,} {metric.replace('_', ' ')}; raise the limit or the ratios",
                key=f"constraints.max_{metric}",
            )


def build_space(
    config: PipelineConfig, model: nn.Module, groups: list[engine.Group], splits: data.Splits
) -> SearchSpace:
    """The pipeline's search space on ``model``'s groups, its size constraints checked, its plans fitted
    to them when ``search.fit_to_limit`` is on.

    Raises:
        ConfigError: A size constraint no candidate can meet, or ``fit_to_limit`` with no size limit.
    """
    search = config.search
    if not groups:
        reasons = "; ".join(f"{name}: {why}" for name, why in engine.GroupGraph(model, splits.input_shape).unprunable())
        raise ModelError(
            f"the model has no prunable dependency group ({reasons or 'no conv/linear layer'})", key="model"
        )
    space = SearchSpace(
        search.space, groups, batch_size=splits.batch_size, train_fraction=search.train_fraction, seed=config.seed
    )
    check_constraints(model, space, config.constraints, splits.input_shape)
    if search.fit_to_limit:
        limits = {metric: getattr(config.constraints, f"max_{metric}") for metric in engine.SIZE_METRICS}
        if all(limit is None for limit in limits.values()):
            raise ConfigError(
                "there is no size limit to fit the plans to: set constraints.max_params, max_macs or max_size_bytes, "
                "or turn fit_to_limit off",
                key="search.fit_to_limit",
            )
        space.fit = engine.FitToLimit(model, splits.input_shape, groups, limits, space.smallest_plan().ratios)
        for metric in (m for m in config.objectives if limits.get(m) is not None):
            log.warning(
                "search.fit_to_limit holds every trial's %s just under constraints.max_%s, so the objective %r "
                "barely varies and the front spreads in the other objectives only; drop it or turn fit_to_limit off",
                metric,
                metric,
                metric,
            )
    return space


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
                f"{'breaks' if one else 'break'} it: the model's code probably fixes {'its width' if one else 'their widths'} "
                f"(a reshape into heads, a hard-coded size); exclude {'it' if one else 'them'} with "
                f"search.space.pruning.exclude: [{', '.join(culprits)}]",
                key="model",
            ) from exc
        raise ModelError(
            f"the model fails once pruned (every group at its highest ratio): {reason}", key="model"
        ) from exc
    return smallest, engine.count_params(smallest)


def _onnx_difference(model: nn.Module, config: PipelineConfig, splits: data.Splits) -> float:
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


def _pruned_and_run(model: nn.Module, plan: engine.PrunePlan, splits: data.Splits) -> nn.Module:
    pruned = copy.deepcopy(model)
    engine.apply_plan(pruned, plan, splits.input_shape)
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
    from .pipeline import dense_cache_dir

    cached = dense_cache_file(dense_cache_dir(config), dense_cache_key(config, splits, model))
    if cached.is_file():
        return f"the dense model is cached ({cached}): its trained weights will be reused"
    return f"the dense model will be trained for {config.model.train.epochs} epochs (cached afterwards)"


def preflight(loaded: LoadedPipeline) -> Preflight:
    """Load the data, build the model (untrained, or from its checkpoint), resolve the search space
    against its groups, check the constraints can be met, that a zero-ratio prune changes nothing,
    that the smallest model of the space runs, and that it exports to ONNX.

    Raises:
        AutoPruneError: The first problem found, with the key it comes from.
    """
    from .pipeline import storage_url

    config = loaded.config
    splits = data.load(config.data, seed=config.seed, base_dir=loaded.base_dir)
    model = build_dense(config, splits, base_dir=loaded.base_dir)
    splits, refused = fit_layout(model, config, splits)
    checkpoint = checkpoint_path(config, loaded.base_dir)
    if checkpoint is not None:
        models.load_checkpoint(model, checkpoint)
    model.eval()
    graph = engine.GroupGraph(model, splits.input_shape)
    space = build_space(config, model, graph.groups, splits)
    sample = splits.val.x[:8]
    unchanged = copy.deepcopy(model)
    engine.apply_plan(unchanged, engine.PrunePlan.uniform(graph.groups, 0.0), splits.input_shape)
    with torch.no_grad():
        difference = float((unchanged(sample) - model(sample)).abs().max())
    if difference != 0.0:
        raise ModelError(f"a zero-ratio prune changed the model's outputs by {difference:.2e}", key="model")
    smallest, smallest_params = _smallest_runs(model, space, splits)
    exported = config.finalize.onnx or config.latency.runtime == "onnxruntime"
    onnx_difference = _onnx_difference(smallest, config, splits) if exported else None
    notes = [] if checkpoint is not None else [_dense_note(config, splits, model)]
    if isinstance(space.fit, engine.FitToLimit):
        notes.append(_fit_note(space.fit, space))
    if refused is not None:
        notes.append(
            f"the model cannot take channels-last images ({refused}), so it runs in the default layout, "
            "up to 2.6x slower on CPU; .view on a convolution's output is the usual cause (.reshape or .flatten take either)"
        )
    return Preflight(
        data_summary=splits.summary(),
        params=engine.count_params(model),
        macs=engine.count_macs(model, splits.input_shape),
        groups=graph.groups,
        unprunable=graph.unprunable(),
        searched={name: repr(dist) for name, dist in space.distributions.items()},
        fixed=space.fixed,
        zero_prune_max_diff=difference,
        onnx_max_diff=onnx_difference,
        smallest_params=smallest_params,
        storage=storage_url(config),
        notes=notes,
    )
