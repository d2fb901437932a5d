"""The CLI around a finished search: export, ui, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import onnxruntime as ort
import pytest
from mlflow.tracking import MlflowClient

from autoprune.tracking import MlflowServer

from .conftest import Store, run_cli


def _runs(store: Store, pareto: str) -> list:
    client = MlflowClient(store.uri)
    experiment = client.get_experiment_by_name("e2e-digits")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.pareto = '{pareto}'")


def test_export_onnx_and_state_dict(finished_search: Store, tmp_path) -> None:
    member = _runs(finished_search, "true")[0].info.run_id
    uri = finished_search.uri
    assert run_cli("export", member, "--format", "onnx", "--out", str(tmp_path / "o"), "--tracking-uri", uri) == 0
    session = ort.InferenceSession(str(tmp_path / "o" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": __import__("numpy").zeros((5, 1, 8, 8), "float32")})[0].shape == (5, 10)
    assert (
        run_cli(
            "export", member, "-f", "state-dict", "-o", str(tmp_path / "s"), "--pipeline", str(finished_search.pipeline)
        )
        == 0
    )
    record = json.loads((tmp_path / "s" / "plan.json").read_text())
    assert set(record["plan"]["keep"]) == {"features.0", "features.4"} and record["metadata"]["model"]["arch"] == "cnn"

    from autoprune import engine, models

    rebuilt = engine.load_pruned(
        tmp_path / "s", lambda: models.build_from_spec(record["metadata"]["model"], (1, 8, 8), 10)
    )
    assert rebuilt.features[0].out_channels == record["plan"]["keep"]["features.0"]


def test_export_finds_a_member_by_alias_version_or_the_printed_run_id(finished_search: Store, tmp_path, capsys) -> None:
    client = MlflowClient(finished_search.uri)
    champion = client.get_model_version_by_alias("e2e-digits", "champion")
    pipeline = str(finished_search.pipeline)
    references = (
        "champion",
        "@champion",
        f"v{champion.version}",
        str(champion.version),
        champion.run_id[:12],
        champion.run_id[:12].upper(),
    )
    for reference in (*references, champion.run_id):
        assert run_cli("export", reference, "-p", pipeline, "-o", str(tmp_path / "o")) == 0, reference
        assert f"run {champion.run_id}" in capsys.readouterr().out
    assert (
        run_cli(
            "export", "models:/e2e-digits@champion", "--tracking-uri", finished_search.uri, "-o", str(tmp_path / "u")
        )
        == 0
    )
    assert f"e2e-digits v{champion.version} (@champion) = trial " in capsys.readouterr().out
    assert (tmp_path / "u" / "model.onnx").read_bytes() == (tmp_path / "o" / "model.onnx").read_bytes()
    elsewhere = tmp_path / "elsewhere.yaml"  # its store named by --set, as the run's closing hint repeats it
    elsewhere.write_text(
        finished_search.pipeline.read_text().replace(finished_search.uri, f"sqlite:///{tmp_path}/empty.db")
    )
    assert "empty.db" in elsewhere.read_text()
    assert (
        run_cli(
            "export",
            "champion",
            "-p",
            str(elsewhere),
            "--set",
            f"tracking.uri={finished_search.uri}",
            "-o",
            str(tmp_path / "m"),
        )
        == 0
    )
    assert f"run {champion.run_id}" in capsys.readouterr().out
    assert run_cli("export", "champion", "--set", "tracking.uri=sqlite:///x.db") == 2
    assert "--set needs a pipeline (--pipeline) to override" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("champ", "e2e-digits has no alias 'champ' (its aliases: champion, fastest, most-accurate, smallest)"),
        ("v999", "e2e-digits has no version 999 (it has versions 1"),
        (
            "models:/e2e-digits/latest",
            "a model URI names an alias or a version number, models:/NAME@ALIAS or models:/NAME/3",
        ),
        ("abcdef0", "no front runs in sqlite:"),
        ("models:/nope@champion", "no registered model 'nope' in sqlite:"),
    ],
)
def test_export_of_an_unknown_member_says_what_there_is(
    finished_search: Store, tmp_path, capsys, reference: str, message: str
) -> None:
    assert run_cli("export", reference, "-p", str(finished_search.pipeline), "-o", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing written


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


def test_export_of_a_non_front_run_says_why(finished_search: Store, tmp_path, capsys) -> None:
    others = _runs(finished_search, "false")
    if not others:
        pytest.skip("every trial landed on the front")
    assert run_cli("export", others[0].info.run_id, "--out", str(tmp_path), "--tracking-uri", finished_search.uri) == 2
    err = capsys.readouterr().err
    assert "has no model.onnx (only Pareto-front runs, tagged pareto=true, have exports)" in err


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
        err
        == "error: p.yaml:3: search.sampler: must be 'tpe', 'nsga2', 'random' or 'qmc', but got 'nsgaa' (did you mean 'nsga2'?)"
    )
    assert not (tmp_path / "mlflow").exists()  # nothing written


def test_an_unknown_option_is_a_usage_error_with_exit_2(capsys) -> None:
    assert run_cli("run", "pipelines/quickstart_digits.yaml", "--set search.trials=2") == 2  # one argument, not two
    err = capsys.readouterr().err
    assert "No such option: --set search.trials" in err and "Usage: autoprune run" in err
    assert "unexpected error" not in err


def test_validate_locates_a_glob_that_matches_no_group(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "name: x\nmodel: {arch: cnn, widths: [8, 16]}\nsearch:\n  space:\n    pruning:\n      overrides:\n        layer3.*: {high: 0.5}\n"
    )
    assert run_cli("validate", "p.yaml") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: p.yaml:7: search.space.pruning.overrides.layer3.*: 'layer3.*' matches no group;")


def test_validate_names_the_groups_a_models_code_cannot_prune_and_the_fix_works(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # tests.user_models:fixed_head_width reshapes its qkv into heads by the tokens' width
    (tmp_path / "p.yaml").write_text('name: x\nmodel: {arch: factory, factory: "tests.user_models:fixed_head_width"}\n')
    assert run_cli("validate", "p.yaml") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: p.yaml:2: model: the model fails once pruned (") and err.count("\n") == 0
    assert err.endswith(
        "pruned alone, groups 'patch', 'qkv' break it: the model's code probably fixes their widths "
        "(a reshape into heads, a hard-coded size); exclude them with search.space.pruning.exclude: [patch, qkv]"
    )
    assert run_cli("validate", "p.yaml", "--set", "search.space.pruning.exclude=[patch, qkv]") == 0
    assert "OK p.yaml is ready to run" in capsys.readouterr().out


def _factory_pipeline(folder: Path, module: str, source: str) -> None:
    """``p.yaml`` in ``folder``, its model ``build`` from ``module``.py written there from ``source`` (a
    name of its own per test: Python keeps the first module imported under a name)."""
    (folder / f"{module}.py").write_text(source)
    (folder / "p.yaml").write_text(f'name: x\nmodel: {{arch: factory, factory: "{module}:build"}}\n')


def test_validate_blames_no_group_when_the_model_fails_before_any_pruning(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _factory_pipeline(  # returns (logits, aux) while training, as some models do
        tmp_path,
        "aux",
        "import torch.nn as nn\n"
        "class Aux(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.a = nn.Conv2d(1, 8, 3); self.b = nn.Conv2d(8, 8, 3); self.head = nn.Linear(8, 10)\n"
        "    def forward(self, x):\n"
        "        y = self.head(self.b(self.a(x)).mean((2, 3)))\n"
        "        return (y, y) if self.training else y\n"
        "def build():\n"
        "    return Aux()\n",
    )
    assert run_cli("validate", "p.yaml") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "error: p.yaml:2: model: the model fails a training step (forward, backward) before any pruning: "
    )
    assert "break it" not in err


def test_validate_says_why_no_group_of_a_model_can_shrink(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _factory_pipeline(  # a depthwise conv with a channel multiplier into one channel per GroupNorm group
        tmp_path,
        "held",
        "import torch.nn as nn\n"
        "def build(num_classes):\n"
        "    return nn.Sequential(nn.Conv2d(1, 16, 1), nn.Conv2d(16, 32, 3, groups=16), nn.GroupNorm(32, 32),\n"
        "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))\n",
    )
    assert run_cli("validate", "p.yaml") == 2
    assert capsys.readouterr().err.strip() == (
        "error: p.yaml:2: model: the model has no prunable dependency group (0: shrinking it alone would unbalance "
        "the blocks of 1; 1: shrinking it alone would unbalance the blocks of 2; 5: its outputs are the model's outputs)"
    )


def test_a_model_that_views_its_convolutions_is_evaluated_in_the_default_layout(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _factory_pipeline(  # x.view(len(x), -1) needs the default layout: on channels-last images it raises
        tmp_path,
        "viewed",
        "import torch.nn as nn\n"
        "class Viewed(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.conv = nn.Conv2d(1, 8, 3); self.head = nn.Linear(8 * 6 * 6, 10)\n"
        "    def forward(self, x):\n"
        "        y = self.conv(x)\n"
        "        return self.head(y.view(y.size(0), -1))\n"
        "def build():\n"
        "    return Viewed()\n",
    )
    assert run_cli("validate", "p.yaml") == 0  # it failed on the digits before: "view size is not compatible"
    out = " ".join(capsys.readouterr().out.split())
    assert "note: the model cannot take channels-last images (RuntimeError: view size is not compatible" in out
    assert ".view on a convolution's output is the usual cause" in out and "OK p.yaml is ready to run" in out
    (tmp_path / "p.yaml").write_text("name: x\nmodel: {arch: cnn, widths: [8, 16]}\n")
    assert run_cli("validate", "p.yaml") == 0
    assert "channels-last" not in capsys.readouterr().out  # the zoo's models take either


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (
            '{"logits": self.head(y)}',
            "the model returns a dict, not a tensor: autoprune needs its logits, shape (batch, 10)",
        ),
        ("self.head(y), y", "the model returns a tuple, not a tensor: autoprune needs its logits, shape (batch, 10)"),
        (
            "self.head(y).repeat(1, 2)[:, :12]",
            "the model gives outputs of shape [2, 12] for 2 inputs, not [2, 10]: one logit per class of the data (10) is needed",
        ),
    ],
)
def test_a_model_must_return_one_logit_per_class(tmp_path, capsys, monkeypatch, returned: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    module = f"outputs{abs(hash(returned))}"
    _factory_pipeline(
        tmp_path,
        module,
        "import torch.nn as nn\n"
        "class Out(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.conv = nn.Conv2d(1, 8, 3); self.head = nn.Linear(8, 10)\n"
        "    def forward(self, x):\n"
        "        y = self.conv(x).mean((2, 3))\n"
        f"        return {returned}\n"
        "def build():\n"
        "    return Out()\n",
    )
    assert (
        run_cli("validate", "p.yaml") == 2
    )  # a dict or tuple was an unexpected error (exit 1); 12 logits trained silently
    assert capsys.readouterr().err.strip().startswith(f"error: p.yaml:2: model: {message}")


def test_validate_names_a_batch_size_fixed_by_the_model_and_skips_onnx_when_it_is_off(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _factory_pipeline(
        tmp_path,
        "sized",
        "import torch.nn as nn\n"
        "class Sized(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.conv = nn.Conv2d(1, 8, 3); self.head = nn.Linear(8 * 6 * 6, 10)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.conv(x).reshape(len(x), -1))\n"
        "def build():\n"
        "    return Sized()\n",
    )
    assert run_cli("validate", "p.yaml") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "error: p.yaml:2: model: the ONNX export fixed the batch size at 2: the model's code makes it a constant (len(x)"
    )
    assert err.endswith("; or set finalize.onnx: false to keep front models as plan and weights only")
    assert run_cli("validate", "p.yaml", "--set", "finalize.onnx=false") == 0
    assert "params) runs (ONNX not checked: finalize.onnx is off)" in " ".join(capsys.readouterr().out.split())


def test_convolutional_models_are_evaluated_channels_last_and_others_in_the_default_layout(digits) -> None:
    from autoprune import config, models
    from autoprune._dense import fit_layout

    pipeline = config.PipelineConfig(name="x", model=config.CNNModel(arch="cnn", widths=[8, 16]))
    for model, channels_last in (
        (config.CNNModel(arch="cnn", widths=[8, 16]), True),
        (config.MLPModel(arch="mlp"), False),
    ):
        built = models.build(model, digits.input_shape, digits.num_classes)
        for splits in (digits.with_layout(False), digits.with_layout(True)):
            laid_out, refused = fit_layout(built, pipeline, splits)
            assert laid_out.channels_last is channels_last and refused is None


def test_validate_shows_what_fit_to_limit_makes_of_a_uniform_plan(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "name: x\nmodel: {arch: cnn, widths: [8, 16]}\nsearch: {fit_to_limit: true}\nconstraints: {max_params: 700}\n"
    )
    assert run_cli("validate", "p.yaml") == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    note = re.search(
        r"fit_to_limit scales every plan to fill max_params 700; a uniform plan fills it at ratio [\d.-]+ \(([\d,]+) params\)",
        out,
    )
    assert note and 600 < int(note.group(1).replace(",", "")) <= 700


def test_validate_says_whether_the_dense_model_is_cached(finished_search: Store, capsys) -> None:
    assert run_cli("validate", str(finished_search.pipeline)) == 0
    assert "the dense model is cached" in capsys.readouterr().out  # the fixture's run trained and cached it
    assert run_cli("validate", str(finished_search.pipeline), "--set", "model.train.epochs=7") == 0
    assert "the dense model will be trained for 7 epochs" in capsys.readouterr().out


def test_the_ui_and_export_hints_repeat_the_overrides_that_name_the_store(capsys) -> None:
    from types import SimpleNamespace

    from autoprune._closing import print_result
    from autoprune.cli import console

    dense = SimpleNamespace(test_accuracy=0.9, params=10, macs=10, latency_ms=1.0)
    result = SimpleNamespace(
        concluded=True,
        records=[],
        config=SimpleNamespace(name="x"),
        front=[],
        front_trials=[],
        copies={},
        dense=dense,
        stop_reason=None,
        hypervolume=0.0,
        study="x",
        storage="sqlite:///s/optuna.db",
        front_url="u",
        model_url=None,
    )
    print_result(
        console,
        result,
        Path("p.yaml"),
        ["tracking.uri=sqlite:///elsewhere/m.db", "search.trials=3", "objectives={accuracy: max}"],
    )
    out = capsys.readouterr().out
    assert "Open the UI with: autoprune ui p.yaml --set tracking.uri=sqlite:///elsewhere/m.db   (" in out
    assert "Export one with" not in out  # nothing registered
    result.model_url, result.aliases = "m", {"smallest": 2, "champion": 3}
    print_result(console, result, Path("p.yaml"), ["tracking.uri=sqlite:///elsewhere/m.db", "search.trials=3"])
    assert (
        "Export one with:  autoprune export champion -p p.yaml --set tracking.uri=sqlite:///elsewhere/m.db   ("
        in capsys.readouterr().out
    )
    result.aliases = {"smallest": 2}  # a retrain that kept the last champion does not set it again
    print_result(console, result, Path("p.yaml"), [])
    assert "Export one with:  autoprune export smallest -p p.yaml   (" in capsys.readouterr().out
    print_result(console, result, Path("p.yaml"), [], champion=True)
    assert "Export one with:  autoprune export champion -p p.yaml   (" in capsys.readouterr().out


def test_front_title_says_why_fewer_members_than_front_trials_follow() -> None:
    from types import SimpleNamespace

    from autoprune._closing import front_title as _front_title

    def result(front_trials: list[int], finalized: list[int], copies: dict[int, int]) -> SimpleNamespace:
        rows = [{"trial": n} for n in finalized]
        return SimpleNamespace(config=SimpleNamespace(name="x"), front=rows, front_trials=front_trials, copies=copies)

    assert _front_title(result([1, 4], [1, 4], {}), 24, 0) == "Pareto front of x: 2 of 24 trials"
    assert _front_title(result([1, 4], [1, 4], {}), 20, 4) == "Pareto front of x: 2 of 20 trials (4 failed)"
    assert _front_title(result([1, 4, 7, 9], [1, 4], {9: 4}), 24, 0) == (
        "Pareto front of x: 4 of 24 trials; 2 finalized, 1 repeating one of them (trial 9 = 4: same channels and score), "
        "1 left out by finalize.max_members or a failed finalize (see the log)"
    )


def test_ui_refuses_overrides_without_a_pipeline(capsys) -> None:
    assert run_cli("ui", "--set", "name=x") == 2
    assert capsys.readouterr().err.strip() == "error: --set needs a pipeline to override"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ui_server_serves_the_store_and_stops_its_process_group(finished_search: Store) -> None:
    server = MlflowServer(finished_search.uri, port=_free_port())
    server.start()
    try:
        query = urllib.request.Request(
            f"{server.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=e2e-digits", method="GET"
        )
        with urllib.request.urlopen(query, timeout=10) as response:
            assert json.load(response)["experiment"]["name"] == "e2e-digits"
        group = os.getpgid(server.process.pid)
        assert group == server.process.pid  # its own process group
    finally:
        server.stop()
    leftover = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_console_script_is_installed() -> None:
    script = os.path.join(os.path.dirname(sys.executable), "autoprune")
    result = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("autoprune ")


def test_front_table_piped_to_a_file_keeps_every_figure(finished_search: Store) -> None:
    script = os.path.join(os.path.dirname(sys.executable), "autoprune")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run([script, "pareto", str(finished_search.pipeline)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    members = _runs(finished_search, "true")
    assert "…" not in result.stdout  # rich's 80 columns for a pipe cut the figures to ellipses
    for run in members:
        assert run.info.run_id[:12] in result.stdout
        assert f"{run.data.metrics['test_accuracy']:.4f}" in result.stdout


def test_validate_warns_when_fit_to_limit_holds_an_objective_still(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    fitted = (
        "name: x\nmodel: {arch: cnn, widths: [8, 16]}\nsearch: {fit_to_limit: true}\nconstraints: {max_params: 700}\n"
    )
    (tmp_path / "p.yaml").write_text(fitted + "objectives: {accuracy: max, params: min}\n")
    assert run_cli("validate", "p.yaml") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "holds every trial's params just under constraints.max_params, so the objective 'params' barely varies" in err
    )
    (tmp_path / "p.yaml").write_text(fitted + "objectives: {accuracy: max, macs: min}\n")  # MACs still vary: no warning
    assert run_cli("validate", "p.yaml") == 0
    assert "barely varies" not in capsys.readouterr().err


def _progress_log(**console_options: object) -> str:
    from io import StringIO

    from rich.console import Console

    from autoprune._display import SearchProgress
    from autoprune.search import TrialRecord

    out = StringIO()
    metrics = {"val_accuracy": 0.9512, "params": 2_500.0, "macs": 40_000.0, "latency_ratio": 0.5}
    with SearchProgress(Console(file=out, width=200, **console_options)) as progress:
        progress.search_started(total=3, earlier=[])
        progress.trial_finished(TrialRecord(number=4, state="complete", params={}, metrics=metrics, seconds=12.3))
        progress.trial_finished(TrialRecord(number=5, state="failed", params={}, error="ValueError: boom"))
    return out.getvalue()


def test_a_search_logged_to_a_file_shows_each_finished_trial() -> None:
    log = _progress_log()  # a file is not a terminal: the live bar cannot draw there
    assert "[1/3] trial 4 done in 12.3 s: val acc 0.9512 · 2,500 params · 40,000 MACs · latency 0.50x dense" in log
    assert "trial 5 failed: ValueError: boom" in log
    assert all(line == line.rstrip() for line in log.splitlines()[:2])  # one unpadded line each, for grep and tail
    assert "trial 4 done" not in _progress_log(force_terminal=True)  # on a terminal the bar's status says it


def test_a_long_training_logged_to_a_file_shows_each_epoch_and_the_time_left(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "name: epochs\ndata: {source: digits}\nmodel: {arch: cnn, widths: [8, 16], train: {epochs: 3}}\n"
        "search: {space: {pruning: {ratio: {low: 0.3, high: 0.5}}, finetune: {epochs: 1}}, trials: 1}\n"
        "objectives: {accuracy: max}\nlatency: {repeats: 5, warmup: 1}\nfinalize: {epochs: 2}\n"
        "tracking: {uri: 'sqlite:///store/mlflow.db', register: false}\n"
    )
    assert run_cli("run", "p.yaml") == 0
    out = capsys.readouterr().out
    assert re.search(
        r"dense model: epoch 1/3 · train loss \d\.\d{4} · val acc \d\.\d{4} · [\d.]+ s/epoch · about \d+ s left", out
    )
    assert re.search(
        r"dense model: epoch 3/3 · train loss \d\.\d{4} · val acc \d\.\d{4} · [\d.]+ s/epoch\n", out
    )  # no time left
    assert re.search(r"trial 0 final fine-tune: epoch 2/2 · ", out)
    assert out.index("dense model: epoch 3/3") < out.index("[1/1] trial 0 done") < out.index("trial 0 final fine-tune")
    assert re.search(
        r"dense model trained in [\d.]+ s: val acc \d\.\d{4} · [\d,]+ params · [\d,]+ MACs · latency [\d.]+ ms", out
    )
    assert run_cli("run", "p.yaml", "--set", "name=epochs-again") == 0
    again = capsys.readouterr().out
    assert "dense model: epoch" not in again  # the cached dense model is not trained again, and says so
    assert "dense model loaded from the cache in " in again


def test_a_log_file_shows_fast_epochs_sparingly_and_slow_ones_all() -> None:
    from io import StringIO

    from rich.console import Console

    from autoprune._display import EPOCH_LOG_EVERY_S, SearchProgress
    from autoprune.engine import EpochReport

    out, now = StringIO(), [0.0]
    progress = SearchProgress(Console(file=out, width=200, force_terminal=False))
    progress.clock = lambda: now[0]
    for epoch in range(1, 11):  # ten fast epochs: the first (with the time left) and the last
        now[0] += 0.05
        progress.training_epoch("trial 3 final fine-tune", EpochReport(epoch, 0.5, 0.9, 0.3, 0.05, epochs=10))
    for epoch in range(1, 5):  # four slow ones: each, as every one takes longer than the interval
        now[0] += EPOCH_LOG_EVERY_S
        progress.training_epoch("dense model", EpochReport(epoch, 0.5, 0.9, 0.3, EPOCH_LOG_EVERY_S, epochs=4))
    lines = out.getvalue().splitlines()
    assert [line.split("] ")[1].split(" · ")[0] for line in lines] == [
        "trial 3 final fine-tune: epoch 1/10",
        "trial 3 final fine-tune: epoch 10/10",
        "dense model: epoch 1/4",
        "dense model: epoch 2/4",
        "dense model: epoch 3/4",
        "dense model: epoch 4/4",
    ]
    assert "0.05 s/epoch" in lines[0]

    for epoch in range(1, 7):  # a fine-tune that stops early, at epoch 6 of 10: the next phase shows where
        now[0] += 0.05
        progress.training_epoch("trial 4 final fine-tune", EpochReport(epoch, 0.5, 0.9, 0.3, 0.05, epochs=10))
    progress.phase("registering front models")
    tail = [line.split("] ")[1].split(" · ")[0] for line in out.getvalue().splitlines()[len(lines) :]]
    assert tail == [
        "trial 4 final fine-tune: epoch 1/10",
        "trial 4 final fine-tune: epoch 6/10",
        "registering front models",
    ]


def test_the_time_left_goes_by_the_median_epoch_so_one_slow_epoch_does_not_swing_it() -> None:
    from io import StringIO

    from rich.console import Console

    from autoprune._display import SearchProgress
    from autoprune.engine import EpochReport

    out, now = StringIO(), [0.0]
    progress = SearchProgress(Console(file=out, width=200, force_terminal=False))
    progress.clock = lambda: now[0]
    for epoch, seconds in enumerate([40.0, 200.0, 44.0], start=1):  # the second epoch shared the machine
        now[0] += seconds
        progress.training_epoch("dense model", EpochReport(epoch, 0.5, 0.9, 0.3, seconds, epochs=13))
    lines = out.getvalue().splitlines()
    assert "200.0 s/epoch · about 22 min left" in lines[1]  # 11 epochs x the median 120 s, not 37 min at 200 s
    assert "44.0 s/epoch · about 7 min left" in lines[2]  # 10 x the median 44 s, not 16 min at the mean 95 s


def test_a_long_training_on_a_terminal_is_a_bar_that_goes_when_it_ends() -> None:
    from io import StringIO

    from rich.console import Console

    from autoprune._display import SearchProgress
    from autoprune.engine import EpochReport

    out = StringIO()
    with SearchProgress(Console(file=out, width=200, force_terminal=True)) as progress:
        progress.training_epoch("dense model", EpochReport(1, 0.52, 0.8812, 0.33, 48.0, epochs=2))
        assert [task.description for task in progress.progress.tasks] == ["dense model"]
        assert "about 48 s left" in progress.progress.tasks[0].fields["status"]
        progress.training_epoch("dense model", EpochReport(2, 0.31, 0.9012, 0.30, 47.0, epochs=2))
        assert not progress.progress.tasks  # the search's bar follows alone
        progress.training_epoch("trial 3 final fine-tune", EpochReport(1, 0.5, 0.9, 0.3, 1.0, epochs=5))
        progress.phase("registering front models")  # a training that stopped early ends with its phase
        assert not progress.progress.tasks
    assert "dense model: epoch" not in out.getvalue()
