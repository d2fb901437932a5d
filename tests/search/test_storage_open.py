"""Opening the study storage while another process creates its tables retries instead of failing."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autoprune.errors import ConfigError
from autoprune.search.backends import _optuna


class IntegrityError(Exception):
    """Named like SQLAlchemy's: what creating the tables raises when another process just did it."""


def test_a_table_creation_race_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = optuna.storages.RDBStorage, []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("UNIQUE constraint failed: alembic_version.version_num")
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    storage = _optuna.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_s=5)
    assert isinstance(storage, real) and len(calls) == 2


def test_other_storage_errors_are_one_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open the Optuna storage"):
        _optuna.open_storage("postgresql://nobody@127.0.0.1:9/none", heartbeat_s=5)
