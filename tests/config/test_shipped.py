"""Every pipeline and search space shipped in the repository validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoprune.config import load_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_pipelines_load(path: Path) -> None:
    assert load_pipeline(path).config.search.trials > 0


@pytest.mark.parametrize("path", sorted((ROOT / "search_spaces").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_search_spaces_load(path: Path) -> None:
    loaded = load_pipeline(
        ROOT / "pipelines" / "quickstart_digits.yaml", [f"search.space=../search_spaces/{path.name}"]
    )
    assert loaded.config.search.space.pruning.ratio.high > 0
