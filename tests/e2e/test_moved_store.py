"""A store folder moved or copied elsewhere (issue 37): refused with the way out until `autoprune
relocate` points its artifact paths at the new folder; then pareto, export, loading by alias, resume
and the UI read and write the new folder only."""

from __future__ import annotations

import shutil
import sqlite3
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from autoprune import workflow
from autoprune.search import TrialState
from autoprune.tracking import MlflowServer, moved_from

from ..helpers import free_port, run_cli

PIPELINE = """\
name: moved
data: {source: digits, batch_size: 64}
model: {arch: cnn, widths: [8, 16], train: {epochs: 3, lr: 0.05}}
search: {trials: 3, sampler: random, space: {finetune: {epochs: 1}}}
latency: {repeats: 5, warmup: 1}
finalize: {epochs: 1}
"""


def _artifact_paths(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        runs = [row[0] for row in connection.execute("SELECT artifact_uri FROM runs")]
        models = [row[0] for row in connection.execute("SELECT artifact_location FROM logged_models")]
    return runs + models


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished search in one folder, then that folder moved to another path."""
    first = tmp_path_factory.mktemp("first") / "project"
    first.mkdir()
    (first / "p.yaml").write_text(PIPELINE)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(first)
        assert workflow.run("p.yaml").concluded
    there = tmp_path_factory.mktemp("second") / "project"
    shutil.move(first, there)
    return there


def test_a_moved_store_is_refused_with_the_way_out_and_relocated_once(moved: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(moved)
    database = moved / "mlflow" / "mlflow.db"
    assert moved_from(database) is not None
    before = database.read_bytes()
    assert run_cli("pareto", "p.yaml") == 2
    err = capsys.readouterr().err
    assert "was moved or copied from" in err and "run 'autoprune relocate'" in err and err.count("\n") == 1
    assert database.read_bytes() == before  # refusing wrote nothing
    assert run_cli("relocate", "p.yaml") == 0
    assert "artifact paths now name" in capsys.readouterr().out
    assert moved_from(database) is None
    assert all(path.startswith((moved / "mlflow" / "artifacts").as_uri()) for path in _artifact_paths(database))
    assert run_cli("relocate", "p.yaml") == 0
    assert "nothing to do" in capsys.readouterr().out


def test_after_relocating_every_command_uses_the_new_folder(moved: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(moved)
    run_cli("relocate", "p.yaml")  # idempotent: whichever test runs first relocates
    assert run_cli("pareto", "p.yaml") == 0
    assert run_cli("export", "champion", "-p", "p.yaml", "-o", str(tmp_path / "out")) == 0
    assert (tmp_path / "out" / "model.onnx").is_file()
    import mlflow.pytorch
    import torch

    mlflow.set_tracking_uri(f"sqlite:///{moved / 'mlflow' / 'mlflow.db'}")
    model = mlflow.pytorch.load_model("models:/moved@champion")
    model.eval()
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    result = workflow.run("p.yaml", resume=True, overrides=["search.trials=4"])
    assert result.concluded and sum(record.state == TrialState.COMPLETE for record in result.records) == 4
    inside = (moved / "mlflow" / "artifacts").as_uri()
    assert all(path.startswith(inside) for path in _artifact_paths(moved / "mlflow" / "mlflow.db"))


def test_a_copied_store_is_refused_too(moved: Path, tmp_path: Path, monkeypatch) -> None:
    """A copy would read and write the original's folder: the same refusal, the original untouched."""
    copy = tmp_path / "copy"
    shutil.copytree(moved, copy)
    monkeypatch.chdir(moved)
    run_cli("relocate", "p.yaml")
    shutil.rmtree(copy)
    shutil.copytree(moved, copy)
    monkeypatch.chdir(copy)
    assert run_cli("export", "champion", "-p", "p.yaml", "-o", str(tmp_path / "o")) == 2
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_the_ui_of_a_relocated_store_serves_its_own_artifacts(moved: Path, monkeypatch) -> None:
    monkeypatch.chdir(moved)
    run_cli("relocate", "p.yaml")
    with sqlite3.connect(moved / "mlflow" / "mlflow.db") as connection:
        run_id = connection.execute("SELECT run_uuid FROM runs WHERE name LIKE 'search %'").fetchone()[0]
    with MlflowServer("sqlite:///mlflow/mlflow.db", port=free_port()) as server:
        query = urllib.parse.urlencode({"run_uuid": run_id, "path": "pareto_macs.png"})
        with urllib.request.urlopen(f"{server.url}/get-artifact?{query}", timeout=30) as response:
            assert response.status == 200 and response.read(8).startswith(b"\x89PNG")
