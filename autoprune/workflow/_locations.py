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
    that is a folder or not a database, a folder that cannot be written, the same sqlite file for both,
    a database server or an MLflow server that does not answer.

    Raises:
        ConfigError: Naming ``tracking.uri`` or ``search.storage``.
    """
    tracking, study = sqlite_path(config.tracking.uri), sqlite_path(storage_url(config))
    if tracking is not None and study is not None and tracking.resolve() == study.resolve():
        raise ConfigError(
            f"must not be the MLflow store's database ({tracking}): each keeps its own tables; leave "
            "search.storage out to keep the study beside it in optuna.db",
            key="search.storage",
        )
    for url, key in ((config.tracking.uri, "tracking.uri"), (storage_url(config), "search.storage")):
        problem = check_sqlite_file(url)
        if problem is not None:
            what = "the Optuna storage" if key == "search.storage" else "the MLflow store"
            raise ConfigError(f"cannot keep {what} there: {problem}", key=key)
        if url.partition(":")[0].startswith(("postgresql", "mysql")):
            _probe_database(url, key)
    if config.tracking.uri.startswith(("http://", "https://")):
        from ..tracking import probe_server

        probe_server(config.tracking.uri)


PROBE_TIMEOUT_S = 10


def _probe_database(url: str, key: str) -> None:
    """Connect to a database server once (``SELECT 1``) and refuse it in one line when that fails,
    naming host and port but never the password."""
    import sqlalchemy

    try:
        address = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError as exc:
        raise ConfigError(f"is not a database URL: {exc}", key=key) from exc
    where = f"{address.host or 'localhost'}:{address.port or 'default port'}/{address.database or ''}"
    engine = sqlalchemy.create_engine(address, connect_args={"connect_timeout": PROBE_TIMEOUT_S})
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:  # the driver's own errors (refused, unknown host, authentication, no driver)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(
            f"cannot connect to the database at {where}: {reason or type(exc).__name__}", key=key
        ) from exc
    finally:
        engine.dispose()
