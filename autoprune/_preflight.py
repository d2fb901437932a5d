"""``autoprune validate``: everything that can go wrong before any training, checked in seconds."""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import data, engine, models
from .config import LoadedPipeline
from .errors import ModelError
from .search import Objectives, SearchSpace

__all__ = ["Preflight", "preflight"]


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
    onnx_max_diff: float
    storage: str
    notes: list[str] = field(default_factory=list)


def preflight(loaded: LoadedPipeline) -> Preflight:
    """Load the data, build the model (untrained, or from its checkpoint), resolve the search space
    against its groups, and check that a zero-ratio prune changes nothing and that ONNX export works.

    Raises:
        AutoPruneError: The first problem found, with the key it comes from.
    """
    from .pipeline import storage_url

    config = loaded.config
    splits = data.load(config.data, seed=config.seed, base_dir=loaded.base_dir)
    torch.manual_seed(config.seed)
    model = models.build(config.model, splits.input_shape, splits.num_classes, search_dirs=[loaded.base_dir])
    if config.model.checkpoint is not None:
        checkpoint = config.model.checkpoint
        models.load_checkpoint(model, checkpoint if checkpoint.is_absolute() else loaded.base_dir / checkpoint)
    model.eval()
    graph = engine.GroupGraph(model, splits.input_shape)
    space = SearchSpace(config.search.space, graph.groups, batch_size=splits.batch_size, seed=config.seed)
    Objectives(list(config.objectives))
    sample = splits.val.x[:8]
    pruned = copy.deepcopy(model)
    engine.apply_plan(pruned, engine.PrunePlan.uniform(graph.groups, 0.0), splits.input_shape)
    with torch.no_grad():
        difference = float((pruned(sample) - model(sample)).abs().max())
    if difference != 0.0:
        raise ModelError(f"a zero-ratio prune changed the model's outputs by {difference:.2e}", key="model")
    with tempfile.TemporaryDirectory(prefix="autoprune-validate-") as workdir:
        onnx_difference = engine.export_onnx(model, splits.input_shape, Path(workdir) / "model.onnx")
    notes = []
    if config.model.checkpoint is None:
        notes.append(f"the dense model will be trained for {config.model.train.epochs} epochs (cached afterwards)")
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
        storage=storage_url(config),
        notes=notes,
    )
