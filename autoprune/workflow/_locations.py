"""Where a pipeline keeps its local state: beside a sqlite tracking store (the study, the dense and
supernet caches, Ray's folders), else in ``./mlflow``."""

from __future__ import annotations

from pathlib import Path

from .._sqlite import check_sqlite_file, sqlite_path
from ..config import PipelineConfig
from ..errors import ConfigError

__all__ = ["cache_dir", "check_stores", "state_dir", "storage_url"]


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


def check_stores(config: PipelineConfig) -> None:
    """Refuse a store that cannot be used before either store is created (reads only): a sqlite file
    that is a folder or not a database, a folder that cannot be written, an MLflow server that does
    not answer.

    Raises:
        ConfigError: Naming ``tracking.uri`` or ``search.storage``.
    """
    for url, key in ((config.tracking.uri, "tracking.uri"), (storage_url(config), "search.storage")):
        problem = check_sqlite_file(url)
        if problem is not None:
            what = "the Optuna storage" if key == "search.storage" else "the MLflow store"
            raise ConfigError(f"cannot keep {what} there: {problem}", key=key)
    if config.tracking.uri.startswith(("http://", "https://")):
        from ..tracking import probe_server

        probe_server(config.tracking.uri)
