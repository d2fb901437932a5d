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


@pytest.mark.parametrize("mode", ["measured", "table"])
def test_validate_estimates_a_candidate_from_its_parts_at_the_pipelines_settings(
    tmp_path: Path, monkeypatch, mode: str
) -> None:
    """Each part of a candidate's score is timed once and scaled: calibration per batch, scoring per
    validation sample; its latency is measured only where no table predicts it."""
    from autoprune import data, engine
    from autoprune.workflow import _validate
    from autoprune.workflow._dense import build_dense

    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: x\nmodel: {arch: cnn, widths: [8, 16]}\n")
    monkeypatch.setattr(_validate, "_timed", lambda work: (1.0, work()))  # every timed part takes a second
    latency = []
    monkeypatch.setattr(engine, "measure_latency", lambda *a, **k: latency.append(a[0]) or {})

    def seconds(*sets: str) -> float:
        given = ["search.strategy=oneshot", f"latency.mode={mode}", "data.batch_size=32", *sets]  # timed on 128 samples
        config = workflow.load("p.yaml", given).config
        splits = data.load(config.data, seed=0, base_dir=tmp_path)
        model = build_dense(config, splits, base_dir=tmp_path)
        space = _validate.search_space(
            config, _validate.build_space(config, model, engine.discover(model, splits.input_shape), splits)
        )
        return _validate._candidate_seconds(config, model, space, splits)

    base = seconds("oneshot.calibration_batches=10", "oneshot.score_samples=128")
    more_batches = seconds("oneshot.calibration_batches=30", "oneshot.score_samples=128")
    more_samples = seconds("oneshot.calibration_batches=10", "oneshot.score_samples=256")
    assert more_batches == pytest.approx(base + 10)  # timed on 2 batches: 0.5 s a batch
    assert more_samples == pytest.approx(base + 1)  # timed on 128 samples: 1 s for 128 more
    assert (len(latency) == 3) is (mode == "measured") and all(set(pair) == {"dense", "pruned"} for pair in latency)
