"""Reading a finished search back: export by run id, version, alias or model URI; pareto piped to a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import onnxruntime as ort
import pytest
from mlflow.tracking import MlflowClient

from autoprune.tracking import MlflowServer

from ..helpers import free_port, run_cli
from .conftest import Store


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
    described = session.get_modelmeta().custom_metadata_map  # the file says what it takes and predicts
    assert json.loads(described["class_names"]) == [str(d) for d in range(10)] and described["autoprune_version"]
    assert json.loads(described["input_shape"]) == [1, 8, 8] and float(described["input_scale"]) == 1 / 16
    assert set(json.loads(described["normalization"])) == {"mean", "std"} and "keep" in json.loads(described["plan"])
    assert str(Path(__file__).parents[2]).encode() not in (tmp_path / "o" / "model.onnx").read_bytes()
    from sklearn.datasets import load_digits

    digits = load_digits()  # raw pixels in, as the source gives them
    logits = session.run(None, {"input": digits.images[:, None].astype("float32")})[0]
    assert (logits.argmax(1) == digits.target).mean() > 0.8
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


def test_export_of_a_non_front_run_says_why(finished_search: Store, tmp_path, capsys) -> None:
    others = _runs(finished_search, "false")
    if not others:
        pytest.skip("every trial landed on the front")
    assert run_cli("export", others[0].info.run_id, "--out", str(tmp_path), "--tracking-uri", finished_search.uri) == 2
    err = capsys.readouterr().err
    assert "has no model.onnx (only Pareto-front runs, tagged pareto=true, have exports)" in err


def test_front_table_piped_to_a_file_keeps_every_figure(finished_search: Store) -> None:
    script = os.path.join(os.path.dirname(sys.executable), "autoprune")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run([script, "pareto", str(finished_search.pipeline)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    members = _runs(finished_search, "true")
    assert "…" not in result.stdout  # rich's 80 columns for a pipe cut the figures to ellipses
    for run in members:
        assert run.info.run_id[:12] in result.stdout
        assert f"{run.data.metrics['front.test_accuracy']:.4f}" in result.stdout


def test_validate_says_whether_the_dense_model_is_cached(finished_search: Store, capsys) -> None:
    assert run_cli("validate", str(finished_search.pipeline)) == 0
    assert "the dense model is cached" in capsys.readouterr().out  # the fixture's run trained and cached it
    assert run_cli("validate", str(finished_search.pipeline), "--set", "model.train.epochs=7") == 0
    assert "the dense model will be trained for 7 epochs" in capsys.readouterr().out


def test_ui_server_serves_the_store_and_stops_its_process_group(finished_search: Store) -> None:
    server = MlflowServer(finished_search.uri, port=free_port())
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


def test_int8_export_is_calibrated_and_checked_on_the_pipelines_data(finished_search: Store, tmp_path, capsys) -> None:
    pipeline = str(finished_search.pipeline)
    assert run_cli("export", "champion", "-p", pipeline, "-f", "onnx-int8", "-o", str(tmp_path / "q")) == 0
    out = capsys.readouterr().out
    assert "predicts as the fp32 model on" in out and "of the test split" in out
    share = float(out.split("predicts as the fp32 model on ")[1].split("%")[0]) / 100
    assert share >= 0.99
    quantized = tmp_path / "q" / "model.int8.onnx"
    assert run_cli("export", "champion", "-p", pipeline, "-o", str(tmp_path / "f")) == 0
    fp32 = (tmp_path / "f" / "model.onnx").stat().st_size  # bytes of the real files, as printed
    assert f"({quantized.stat().st_size:,} bytes, fp32 {fp32:,}: " in out
    proto = __import__("onnx").load(str(quantized))
    assert any(t.data_type == __import__("onnx").TensorProto.INT8 for t in proto.graph.initializer)  # int8 weights
    session = ort.InferenceSession(str(quantized), providers=["CPUExecutionProvider"])
    described = session.get_modelmeta().custom_metadata_map
    assert described["quantization"].startswith("int8 static") and "class_names" in described
    assert any("QuantizeLinear" in node.op_type for node in proto.graph.node)
    assert run_cli("export", "champion", "--tracking-uri", finished_search.uri, "-f", "onnx-int8") == 2
    assert "--format onnx-int8 needs --pipeline" in capsys.readouterr().err


def test_export_shared_weights_packs_the_member_and_loads_back(finished_search: Store, tmp_path, capsys) -> None:
    """--format shared: k values per layer, fine-tuned on the pipeline's data, a packed file smaller than
    the member's fp32 weights that loads back into the member's architecture and predicts raw inputs."""
    out = tmp_path / "shared"
    pipeline = str(finished_search.pipeline)
    assert run_cli("export", "champion", "-f", "shared", "--clusters", "8", "-o", str(out), "-p", pipeline) == 0
    assert "x smaller); test accuracy" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["model.shared", "plan.json"]
    record = json.loads((out / "plan.json").read_text())

    from autoprune import engine, models

    def build():
        model = models.build_from_spec(record["metadata"]["model"], (1, 8, 8), 10)
        engine.apply_plan(model, engine.PrunePlan.from_dict(record["plan"]), (1, 8, 8))
        return engine.Preprocessed(model, (1, 8, 8), input_scale=1 / 16, mean=[0.0], std=[1.0])

    model = engine.load_shared(out / "model.shared", build)
    assert all(count <= 8 for count in engine.distinct_weights(model).values())
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    with torch.no_grad():
        predicted = model(torch.as_tensor(digits.images[:, None], dtype=torch.float32)).argmax(1).numpy()
    assert (predicted == digits.target).mean() > 0.8  # raw pixels in: the preprocessing is inside
    assert run_cli("export", "champion", "-f", "shared", "--tracking-uri", finished_search.uri) == 2
