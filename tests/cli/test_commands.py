"""The command line itself: it starts without heavy imports, errors are one line with exit status 2,
reading commands never create a store, the console script is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..helpers import run_cli


def test_reading_commands_never_create_a_store(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: x\n")
    for argv in (["export", "champion"], ["pareto", "p.yaml"], ["pareto", "--experiment", "x"]):
        assert run_cli(*argv) == 2, argv
        assert "no MLflow store at mlflow/mlflow.db: run a pipeline into it first" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]
    from autoprune.tracking import sqlite_path

    assert sqlite_path("sqlite:///mlflow/mlflow.db?timeout=30") == Path(
        "mlflow/mlflow.db"
    )  # an existing store is found
    assert sqlite_path("postgresql://h/db") is None


def test_the_command_line_starts_without_torch_mlflow_or_ray() -> None:
    code = (
        "import sys, autoprune.cli; print(sorted(m for m in ('torch', 'mlflow', 'ray', 'optuna') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr  # `autoprune --help` answers at once


def test_bad_pipeline_exits_2_with_one_line(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: x\nsearch:\n  sampler: nsgaa\n")
    assert run_cli("run", "p.yaml") == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == "error: p.yaml:3: search.sampler: must be 'tpe', 'nsga2', 'random' or 'qmc', but got 'nsgaa' (did you "
        "mean 'nsga2'?)"
    )
    assert not (tmp_path / "mlflow").exists()  # nothing written


def test_an_unknown_option_is_a_usage_error_with_exit_2(capsys) -> None:
    assert run_cli("run", "pipelines/quickstart_digits.yaml", "--set search.trials=2") == 2  # one argument, not two
    err = capsys.readouterr().err
    assert "No such option: --set search.trials" in err and "Usage: autoprune run" in err
    assert "unexpected error" not in err


def test_ui_refuses_overrides_without_a_pipeline(capsys) -> None:
    assert run_cli("ui", "--set", "name=x") == 2
    assert capsys.readouterr().err.strip() == "error: --set needs a pipeline to override"


def test_console_script_is_installed() -> None:
    script = os.path.join(os.path.dirname(sys.executable), "autoprune")
    result = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("autoprune ")


def test_resume_with_nothing_to_resume_says_a_new_search_starts(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "name: fresh\nmodel: {arch: mlp, hidden: [16], train: {epochs: 1}}\nsearch: {trials: 1, sampler: random}\n"
        "latency: {repeats: 5, warmup: 1}\ntracking: {register: false}\nfinalize: {epochs: 1, onnx: false}\n"
    )
    assert run_cli("run", "p.yaml", "--resume") == 0
    assert (
        "--resume: no earlier search of fresh in sqlite:///mlflow/optuna.db, so a new one starts"
        in capsys.readouterr().err
    )
    assert run_cli("run", "p.yaml", "--resume", "--set", "search.trials=2") == 0
    assert "no earlier search" not in capsys.readouterr().err


def test_a_file_the_machine_refuses_is_one_line_with_exit_2_and_run_says_resume(tmp_path, capsys, monkeypatch) -> None:
    """A read-only artifact folder or a full disk mid-run: the file and the reason, not 'unexpected error'."""
    from autoprune import workflow

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "mlflow/artifacts/1/abc/artifacts/pruned/model.onnx")

    monkeypatch.setattr(workflow, "run", refused)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: x\n")
    assert run_cli("run", "p.yaml") == 2
    assert capsys.readouterr().err.strip() == (
        "error: mlflow/artifacts/1/abc/artifacts/pruned/model.onnx: Permission denied (every finished trial is kept: "
        "fix this and continue with autoprune run --resume)"
    )
