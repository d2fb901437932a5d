"""The benchmark scripts: each imports and answers --help; the search-quality budget split is fair."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import search_quality  # noqa: E402


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_every_benchmark_answers_help(script: str) -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


@pytest.mark.parametrize(("budget", "points"), [(8.4, 3), (80.3, 6), (13.6, 6), (6.0, 3), (2.0, 3), (0.4, 2)])
def test_baselines_spend_the_budget_autoprune_spent(budget: float, points: int) -> None:
    epochs = search_quality.split_budget(budget, points)
    assert len(epochs) == points
    assert min(epochs) >= 1
    assert max(epochs) - min(epochs) <= 1  # as even as whole epochs allow
    assert epochs == sorted(epochs)  # the spare epochs go to the highest ratios
    assert sum(epochs) == max(points, round(budget))
