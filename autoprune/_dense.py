"""The dense model of a pipeline: built, then trained once (cached by config hash) or loaded from a
checkpoint, and measured once as the reference every candidate is compared with."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import __version__, engine, models
from .config import PipelineConfig
from .data import Splits
from .search import DenseReference

__all__ = ["DenseModel", "prepare_dense", "dense_cache_key"]

log = logging.getLogger("autoprune")


@dataclass
class DenseModel:
    model: nn.Module
    reference: DenseReference
    source: str  # "trained", "cache" or "checkpoint"
    seconds: float
    cache_path: Path | None = None


def dense_cache_key(config: PipelineConfig, splits: Splits) -> str:
    """A hash of everything that determines the trained dense weights."""
    recipe = {
        "data": config.data.model_dump(mode="json"),
        "model": config.model.model_dump(mode="json"),
        "seed": config.seed,
        "input_shape": list(splits.input_shape),
        "num_classes": splits.num_classes,
        "versions": [__version__, torch.__version__],
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _train(model: nn.Module, config: PipelineConfig, splits: Splits) -> None:
    train = config.model.train
    torch.manual_seed(config.seed)
    engine.finetune(
        model,
        splits,
        engine.FinetuneConfig(
            epochs=train.epochs,
            lr=train.lr,
            optimizer=train.optimizer,
            weight_decay=train.weight_decay,
            label_smoothing=train.label_smoothing,
            batch_size=train.batch_size or splits.batch_size,
            seed=config.seed,
        ),
    )


def _save_atomically(model: nn.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    torch.save(model.state_dict(), partial)
    os.replace(partial, path)  # readers never see half a file


def prepare_dense(
    config: PipelineConfig,
    splits: Splits,
    *,
    base_dir: Path,
    cache_dir: Path | None,
    latency: engine.LatencyConfig,
) -> DenseModel:
    """Build the dense model and give it weights: checkpoint, else cache, else train (and cache)."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    model = models.build(config.model, splits.input_shape, splits.num_classes, search_dirs=[base_dir])
    cache_path = cache_dir / f"dense-{dense_cache_key(config, splits)}.pt" if cache_dir else None
    if config.model.checkpoint is not None:
        checkpoint = config.model.checkpoint
        models.load_checkpoint(model, checkpoint if checkpoint.is_absolute() else base_dir / checkpoint)
        source = "checkpoint"
    elif cache_path is not None and cache_path.is_file():
        models.load_checkpoint(model, cache_path, key="model")
        source = "cache"
    else:
        _train(model, config, splits)
        if cache_path is not None:
            _save_atomically(model, cache_path)
        source = "trained"
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
    return DenseModel(model, reference, source, time.perf_counter() - start, cache_path)
