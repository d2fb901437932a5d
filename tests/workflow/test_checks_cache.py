"""validate's ONNX check: answered again from the store's cache for the same model and exporter,
checked anew when the model changes, and never the reason a folder appears."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoprune import engine, workflow
from autoprune.workflow import _checks_cache


def test_the_onnx_check_is_kept_for_the_same_model_and_redone_for_another(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: x\nmodel: {arch: cnn, widths: [8, 16]}\n")
    first = workflow.validate("p.yaml")
    assert not (tmp_path / "mlflow").exists()  # validate creates no store folder, so nothing is kept yet
    (tmp_path / "mlflow" / "cache").mkdir(parents=True)
    workflow.validate("p.yaml")
    assert (tmp_path / "mlflow" / "cache" / _checks_cache.CHECKS).is_file()

    def refuse(*args: object, **kwargs: object) -> float:
        raise AssertionError("the export ran again")

    monkeypatch.setattr(engine, "export_onnx", refuse)
    assert workflow.validate("p.yaml").onnx_max_diff == first.onnx_max_diff  # from the cache
    with pytest.raises(AssertionError, match="the export ran again"):  # another model: checked anew
        workflow.validate("p.yaml", overrides=["model.widths=[8, 12]"])


def test_a_damaged_cache_of_checks_is_checked_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: x\nmodel: {arch: cnn, widths: [8, 16]}\n")
    (tmp_path / "mlflow" / "cache").mkdir(parents=True)
    (tmp_path / "mlflow" / "cache" / _checks_cache.CHECKS).write_text("[not, a, mapping")
    assert workflow.validate("p.yaml").onnx_max_diff is not None
    assert "[not" not in (tmp_path / "mlflow" / "cache" / _checks_cache.CHECKS).read_text()


def test_the_dense_models_macs_are_kept_for_the_same_layers(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: x\nmodel: {arch: cnn, widths: [8, 16]}\n")
    (tmp_path / "mlflow" / "cache").mkdir(parents=True)
    first = workflow.validate("p.yaml")

    def refuse(*args: object, **kwargs: object) -> int:
        raise AssertionError("counted again")

    monkeypatch.setattr(engine, "count_macs", refuse)
    assert workflow.validate("p.yaml").macs == first.macs
    with pytest.raises(AssertionError, match="counted again"):  # other layers: counted anew
        workflow.validate("p.yaml", overrides=["model.widths=[8, 12]"])
