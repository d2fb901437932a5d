"""The Python API: a caller of run, retrain or validate gets errors located at file:line:key, as the
command line prints them."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoprune import workflow
from autoprune.errors import ConfigError, UsageError


def test_an_error_found_while_running_names_the_file_line_and_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "name: x\nmodel: {arch: cnn, widths: [8, 16]}\nsearch:\n  space:\n    pruning:\n      exclude: [nothing.*]\n"
    )
    with pytest.raises(ConfigError) as info:
        workflow.validate("p.yaml")
    assert str(info.value).startswith("p.yaml:6: search.space.pruning.exclude.0: 'nothing.*' matches no group")
    with pytest.raises(ConfigError, match=r"^p\.yaml:6: search\.space\.pruning\.exclude\.0: "):
        workflow.run("p.yaml")
    assert not (tmp_path / "mlflow").exists()  # nothing written


def test_overrides_apply_to_a_file_not_to_a_loaded_pipeline(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("name: x\n")
    loaded = workflow.load(tmp_path / "p.yaml", ["search.trials=3"])
    assert loaded.config.search.trials == 3 and workflow.load(loaded) is loaded
    with pytest.raises(UsageError, match="overrides apply to a pipeline file"):
        workflow.load(loaded, ["search.trials=4"])


def test_validate_reports_the_strategy_it_will_search_with(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: x\nmodel: {arch: cnn, widths: [8, 16]}\n")
    assert workflow.validate("p.yaml").strategy.startswith("trials")
    report = workflow.validate("p.yaml", overrides=["search.strategy=oneshot", "oneshot.candidates=50"])
    assert report.strategy.startswith("oneshot: a supernet fine-tuned 4 epochs") and "50 candidates" in report.strategy
    assert any(note.startswith("oneshot: the supernet's 4 epochs take about") for note in report.notes)
    assert set(report.searched) == {f"ratio.{group.name}" for group in report.groups}  # plans only


@pytest.mark.parametrize(("runtime", "export"), [("torch", False), ("onnxruntime", True)])
def test_validate_says_what_a_latency_table_will_measure(
    tmp_path: Path, monkeypatch, runtime: str, export: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: x\nmodel: {arch: cnn, widths: [8, 16]}\n")
    sets = ["latency.mode=table", f"latency.runtime={runtime}", "finalize.onnx=false"]
    notes = [n for n in workflow.validate("p.yaml", overrides=sets).notes if n.startswith("latency.mode table:")]
    assert len(notes) == 1 and "0 layer latencies kept" in notes[0], notes
    assert ("(an ONNX export each)" in notes[0]) is export  # onnxruntime: each entry is exported first
    assert not (tmp_path / "mlflow").exists()  # nothing written
