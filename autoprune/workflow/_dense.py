"""The dense model of a pipeline: built, then trained once (cached by config hash) or loaded from a
checkpoint, and measured once as the reference every candidate is compared with."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import __version__, engine, models
from .._files import write_atomically
from .._vocab import duration
from ..config import PipelineConfig
from ..data import Splits
from ..errors import ModelError, TrialDiverged
from ..search import DenseReference

__all__ = [
    "DenseModel",
    "build_dense",
    "checkpoint_path",
    "dense_cache_file",
    "dense_cache_key",
    "prepare_dense",
    "training_recipe",
]

log = logging.getLogger("autoprune")


@dataclass
class DenseModel:
    model: nn.Module
    reference: DenseReference
    source: str  # "trained", "cache" or "checkpoint"
    seconds: float
    key: str = ""  # dense_cache_key: what the weights were trained from
    cache_path: Path | None = None

    def describe(self) -> str:
        """Where the weights came from and what the search prunes, in one line."""
        how = {"trained": "trained", "cache": "loaded from the cache", "checkpoint": "loaded from its checkpoint"}[
            self.source
        ]
        ref = self.reference
        return (
            f"dense model {how} in {duration(self.seconds, decimals=1)}: val acc {ref.val_accuracy:.4f} · "
            f"{ref.params:,} params · {ref.macs:,} MACs · latency {ref.latency_ms:.3f} ms"
        )


def _data_fingerprint(splits: Splits) -> str:
    """A hash of the training and validation tensors: edited files or factories change it."""
    digest = hashlib.sha256()
    for tensor in (splits.train.x, splits.train.y, splits.val.x, splits.val.y):
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def code_fingerprint(model: nn.Module) -> str:
    """A hash of the source file defining the model's class (a factory's module can change)."""
    try:
        return hashlib.sha256(Path(inspect.getfile(type(model))).read_bytes()).hexdigest()
    except (TypeError, OSError):
        return type(model).__qualname__


def dense_cache_key(config: PipelineConfig, splits: Splits, model: nn.Module) -> str:
    """A hash of everything that determines the trained dense weights: the training recipe, the
    data itself and the code of the model."""
    recipe = {
        "model": config.model.model_dump(mode="json"),
        "seed": config.seed,
        "data": _data_fingerprint(splits),
        "code": code_fingerprint(model),
        "versions": [__version__, torch.__version__],
    }
    if splits.augment.active:  # only then, so keys of caches trained without it stay valid
        recipe["augment"] = dataclasses.asdict(splits.augment)
    if config.precision != "fp32":  # the same
        recipe["precision"] = config.precision
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def dense_cache_file(cache_dir: Path, key: str) -> Path:
    """Where the dense model trained from `dense_cache_key` ``key`` is kept in ``cache_dir``."""
    return cache_dir / f"dense-{key}.pt"


def checkpoint_path(config: PipelineConfig, base_dir: Path) -> Path | None:
    """The dense checkpoint named in the pipeline, relative to the pipeline file."""
    checkpoint = config.model.checkpoint
    if checkpoint is None:
        return None
    return checkpoint if checkpoint.is_absolute() else base_dir / checkpoint


def training_recipe(config: PipelineConfig, splits: Splits) -> engine.FinetuneConfig:
    """How the dense model is trained (the pipeline's ``model.train``)."""
    train = config.model.train
    return engine.FinetuneConfig(
        epochs=train.epochs,
        lr=train.lr,
        optimizer=train.optimizer,
        weight_decay=train.weight_decay,
        label_smoothing=train.label_smoothing,
        batch_size=train.batch_size or splits.batch_size,
        seed=config.seed,
        precision=config.precision,
    )


def _train(
    model: nn.Module, config: PipelineConfig, splits: Splits, on_epoch: Callable[[engine.EpochReport], None] | None
) -> None:
    torch.manual_seed(config.seed)
    try:
        engine.finetune(model, splits, training_recipe(config, splits), on_epoch=on_epoch)
    except TrialDiverged as exc:
        raise ModelError(f"training the dense model diverged ({exc.message})", key="model.train.lr") from exc


def _save_atomically(model: nn.Module, path: Path) -> None:
    write_atomically(path, lambda partial: torch.save(model.state_dict(), partial))


def build_dense(config: PipelineConfig, splits: Splits, *, base_dir: Path) -> nn.Module:
    """The dense architecture, freshly initialised from the pipeline's seed (no weights loaded yet)."""
    torch.manual_seed(config.seed)
    return models.build(config.model, splits.input_shape, splits.num_classes, search_dirs=[base_dir])


def prepare_dense(
    config: PipelineConfig,
    splits: Splits,
    model: nn.Module,
    *,
    base_dir: Path,
    cache_dir: Path | None,
    latency: engine.LatencyConfig,
    on_epoch: Callable[[engine.EpochReport], None] | None = None,
) -> DenseModel:
    """Give the model from `build_dense` its weights: checkpoint, else cache, else train (and cache,
    calling ``on_epoch`` after each epoch); then measure it once as the reference."""
    start = time.perf_counter()
    checkpoint = checkpoint_path(config, base_dir)
    key = dense_cache_key(config, splits, model)
    cache_path = dense_cache_file(cache_dir, key) if cache_dir else None
    source = "trained"
    if checkpoint is not None:
        models.load_checkpoint(model, checkpoint)
        source = "checkpoint"
    elif cache_path is not None and cache_path.is_file():
        try:
            models.load_checkpoint(model, cache_path, key="model")
            source = "cache"
        except ModelError as exc:  # a damaged or stale cache entry is rebuilt, not fatal
            log.warning("ignoring the cached dense model %s: %s", cache_path.name, exc.message)
    if source == "trained":
        _train(model, config, splits, on_epoch)
        if cache_path is not None:
            _save_atomically(model, cache_path)
    model.eval()
    val = engine.evaluate(model, splits.val)
    test = engine.evaluate(model, splits.test)
    reference = DenseReference(
        val_accuracy=val.accuracy,
        test_accuracy=test.accuracy,
        params=engine.count_params(model),
        macs=engine.count_macs(model, splits.input_shape),
        size_bytes=engine.size_bytes(model),
        latency_ms=engine.measure_latency({"dense": model}, splits.input_shape, latency)["dense"],
    )
    log.info("dense model (%s): val %.4f, test %.4f", source, val.accuracy, test.accuracy)
    return DenseModel(model, reference, source, time.perf_counter() - start, key, cache_path)
