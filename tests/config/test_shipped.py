"""Every pipeline and search space shipped in the repository validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoprune.config import load_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_pipelines_load_and_name_a_space_file_that_is_there(path: Path) -> None:
    loaded = load_pipeline(path)
    assert loaded.config.name == path.stem.replace("_", "-")  # its experiment and model are found by the file's name
    if loaded.space_path is not None:  # an included space file resolves inside the repository
        assert loaded.space_path.is_file() and loaded.space_path.is_relative_to(ROOT)
        assert loaded.space_text == loaded.space_path.read_text()


@pytest.mark.parametrize("path", sorted((ROOT / "search_spaces").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_search_spaces_load(path: Path) -> None:
    loaded = load_pipeline(
        ROOT / "pipelines" / "quickstart_digits.yaml", [f"search.space=../search_spaces/{path.name}"]
    )
    assert loaded.config.search.space.pruning.ratio.high > 0
