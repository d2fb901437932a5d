"""A search over pruning and compression: each trial's size is its deployable's bytes, and the front's
models carry their compressed files into MLflow and every view of the front."""

from __future__ import annotations

import textwrap
from pathlib import Path

import onnxruntime as ort
import pytest
from mlflow.tracking import MlflowClient

from ..helpers import run_cli

PIPELINE = """\
name: e2e-compressed
seed: 0
data: {{source: digits, batch_size: 64}}
model: {{arch: cnn, widths: [8, 16], train: {{epochs: 6, lr: 0.05}}}}
search:
  space:
    pruning: {{ratio: {{low: 0.0, high: 0.6, step: 0.1}}, uniform: true}}
    finetune: {{lr: 0.02, epochs: 1}}
    compression: {{quantize: [none, int8], weight_clusters: [none, 16], epochs: 1}}
  sampler: random
  trials: 8
objectives: {{accuracy: max, size_bytes: min}}
latency: {{repeats: 5, warmup: 1}}
tracking: {{uri: "sqlite:///{db}"}}
finalize: {{epochs: 1}}
"""


@pytest.fixture(scope="module")
def compressed_search(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("compressed")
    pipeline = root / "pipeline.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE.format(db=root / "mlflow.db")))
    assert run_cli("run", str(pipeline)) == 0
    return pipeline, f"sqlite:///{root / 'mlflow.db'}"


def _children(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("e2e-compressed")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId")]


def test_each_trial_is_sized_and_judged_as_it_is_stored(compressed_search: tuple[Path, str]) -> None:
    _, uri = compressed_search
    children = _children(uri)
    kinds = {(c.data.params["quantize"], c.data.params["weight_clusters"]) for c in children}
    assert {("none", "none"), ("int8", "none"), ("none", "16")} <= kinds  # the sampler tried each kind
    by_ratio: dict[str, dict[tuple[str, str], float]] = {}
    for child in children:
        params, metrics = child.data.params, child.data.metrics
        by_ratio.setdefault(params["ratio"], {})[(params["quantize"], params["weight_clusters"])] = metrics[
            "size_bytes"
        ]
        if (params["quantize"], params["weight_clusters"]) == ("none", "none"):
            assert "fp32_val_accuracy" not in metrics
        else:  # the compressed model's accuracy is the final step of the series; the fp32 one beside it
            assert "fp32_val_accuracy" in metrics and 0.5 < metrics["val_accuracy"] <= 1.0
    for sizes in by_ratio.values():  # at one architecture, the compressed files are the smaller ones
        fp32 = sizes.get(("none", "none"))
        if fp32 is not None:
            assert all(size < fp32 for kind, size in sizes.items() if kind != ("none", "none"))


def test_front_members_carry_their_compressed_file(compressed_search: tuple[Path, str], capsys) -> None:
    pipeline, uri = compressed_search
    client = MlflowClient(uri)
    members = [c for c in _children(uri) if c.data.tags.get("autoprune.finalized") == "true"]
    assert members
    stored = {m.data.tags["autoprune.compression"] for m in members}
    for member in members:
        compression = member.data.tags["autoprune.compression"]
        files = {a.path.rsplit("/", 1)[-1]: a for a in client.list_artifacts(member.info.run_id, "pruned")}
        name = {"fp32": None, "int8": "model.int8.onnx", "16 shared values": "model.shared"}.get(compression)
        if compression == "16 shared values + int8":
            name = "model.int8.onnx"
        if name is None:
            assert "model.int8.onnx" not in files and "model.shared" not in files
            continue
        assert files[name].file_size == member.data.metrics["front.size_bytes"]  # bytes from the real file
        if name == "model.int8.onnx":
            local = client.download_artifacts(member.info.run_id, f"pruned/{name}")
            session = ort.InferenceSession(local, providers=["CPUExecutionProvider"])
            described = session.get_modelmeta().custom_metadata_map
            assert described["compression"] == compression and "class_names" in described
    assert run_cli("pareto", str(pipeline)) == 0
    shown = capsys.readouterr().out
    assert "stored as" in shown or stored == {"fp32"}
    versions = client.search_model_versions("name = 'e2e-compressed'")
    described = [v for v in versions if any(kind in (v.description or "") for kind in ("int8", "shared values"))]
    assert len(described) == sum(m.data.tags["autoprune.compression"] != "fp32" for m in members)
    for version in described:  # the registry names the deployable file beside the fp32 model
        deployable = version.tags["autoprune.deployable"]
        assert deployable.startswith(f"runs:/{version.run_id}/pruned/model.")
        assert client.download_artifacts(version.run_id, deployable.removeprefix(f"runs:/{version.run_id}/"))


def test_a_oneshot_search_compresses_its_front_as_the_space_says(tmp_path: Path) -> None:
    text = PIPELINE.replace("name: e2e-compressed", "name: e2e-oneshot-int8").replace(
        "compression: {{quantize: [none, int8], weight_clusters: [none, 16], epochs: 1}}",
        "compression: {{quantize: int8}}",
    )
    text = text.replace("  sampler: random\n  trials: 8\n", "  strategy: oneshot\n")
    text += "oneshot: {{supernet_epochs: 0, candidates: 20, calibration_batches: 2, members: 2}}\n"
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(textwrap.dedent(text.format(db=tmp_path / "mlflow.db")))
    assert run_cli("run", str(pipeline)) == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("e2e-oneshot-int8")
    members = client.search_runs([experiment.experiment_id], filter_string="tags.`autoprune.finalized` = 'true'")
    assert members and all(m.data.tags["autoprune.compression"] == "int8" for m in members)
    for member in members:
        files = {a.path.rsplit("/", 1)[-1]: a.file_size for a in client.list_artifacts(member.info.run_id, "pruned")}
        assert files["model.int8.onnx"] == member.data.metrics["front.size_bytes"]  # (on this tiny model, QDQ's
        # scales and nodes outweigh the 3 bytes saved per weight: the int8 file is larger than the fp32 one)


def test_export_hands_out_the_file_the_search_compressed(compressed_search: tuple[Path, str], tmp_path: Path) -> None:
    _, uri = compressed_search
    members = [c for c in _children(uri) if c.data.tags.get("autoprune.finalized") == "true"]
    for member in members:
        stored, run_id = member.data.tags["autoprune.compression"], member.info.run_id
        out = tmp_path / run_id
        if stored.endswith("int8"):
            assert run_cli("export", run_id, "-f", "onnx-int8", "--tracking-uri", uri, "-o", str(out)) == 0
            assert (out / "model.int8.onnx").stat().st_size == member.data.metrics["front.size_bytes"]
        elif stored.endswith("shared values"):
            assert run_cli("export", run_id, "-f", "shared", "--tracking-uri", uri, "-o", str(out)) == 0
            assert (out / "model.shared").stat().st_size == member.data.metrics["front.size_bytes"]
            assert (out / "plan.json").is_file()
        else:  # nothing stored: making one needs the pipeline's data
            assert run_cli("export", run_id, "-f", "shared", "--tracking-uri", uri, "-o", str(out)) == 2
