"""A small digits pipeline run end to end into a temporary sqlite MLflow store (once per session)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..helpers import run_cli

PIPELINE = """\
name: e2e-digits
seed: 0
data: {{source: digits, batch_size: 64}}
model: {{arch: cnn, widths: [8, 16], train: {{epochs: 6, lr: 0.05}}}}
search:
  space:
    pruning: {{ratio: {{low: 0.0, high: 0.8, step: 0.1}}, importance: [l1, l2]}}
    finetune: {{lr: {{low: 0.005, high: 0.05, log: true}}, epochs: [1, 2], distill_alpha: [0.0, 0.5]}}
  sampler: random
  trials: 6
objectives: {{accuracy: max, macs: min, latency_ms: min}}
constraints: {{max_accuracy_drop: 0.05}}
latency: {{repeats: 10, warmup: 2}}
tracking: {{uri: "sqlite:///{db}"}}
finalize: {{epochs: 2}}
champion: {{prefer: macs, max_accuracy_drop: 0.02}}
"""


@dataclass
class Store:
    pipeline: Path
    uri: str
    root: Path


@pytest.fixture(scope="session")
def finished_search(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """6 trials, then ``--resume`` to 9: the store every e2e test reads."""
    root = tmp_path_factory.mktemp("e2e")
    db = root / "store" / "mlflow.db"
    pipeline = root / "pipeline.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(db=db)))
    assert run_cli("run", str(pipeline)) == 0
    assert run_cli("run", str(pipeline), "--resume", "--set", "search.trials=9") == 0
    return Store(pipeline, f"sqlite:///{db}", root)
