"""Where a pipeline keeps its local state: beside a sqlite tracking store (the study, the dense and
supernet caches, Ray's folders), else in ``./mlflow``."""

from __future__ import annotations

from pathlib import Path

from .._sqlite import sqlite_path
from ..config import PipelineConfig

__all__ = ["cache_dir", "state_dir", "storage_url"]


def state_dir(config: PipelineConfig) -> Path:
    """Where local state lives: beside a sqlite tracking store, else ``./mlflow``."""
    database = sqlite_path(config.tracking.uri)
    return database.parent if database is not None else Path("mlflow")


def cache_dir(config: PipelineConfig) -> Path:
    """Where trained dense models (and one-shot supernets) are cached by what they were trained from."""
    return state_dir(config) / "cache"


def storage_url(config: PipelineConfig) -> str:
    """The Optuna storage: the pipeline's, else a sqlite file beside the tracking store."""
    return config.search.storage or f"sqlite:///{state_dir(config) / 'optuna.db'}"
