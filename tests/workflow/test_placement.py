"""A pipeline's ``device`` and ``precision``: a device this machine lacks is bad input said before
anything is written, validate shows where a run will train, Ray trials get the GPUs they reserve, and
a run in mixed precision (and with a compiled finalize) goes end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autoprune import config, workflow
from autoprune.errors import ConfigError
from autoprune.workflow._placement import pipeline_device

CUDA = torch.cuda.is_available()


def _config(**values: object) -> config.PipelineConfig:
    return config.PipelineConfig(name="x", **values)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_a_gpu_this_machine_lacks_is_a_located_error_and_nothing_is_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: x\ndevice: cuda\nmodel: {arch: cnn, widths: [8, 16]}\n")
    expected = r"^p\.yaml:2: device: 'cuda' was asked for, but this machine has no usable CUDA device"
    with pytest.raises(ConfigError, match=expected):
        workflow.validate("p.yaml")
    with pytest.raises(ConfigError, match=expected):
        workflow.run("p.yaml")
    assert sorted(tmp_path.iterdir()) == [tmp_path / "p.yaml"]  # no store, cache or study


def test_validate_says_where_a_run_trains_and_in_what_precision(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: x\nmodel: {arch: cnn, widths: [8, 16]}\n")
    report = workflow.validate("p.yaml", overrides=["device=cpu", "precision=bf16", "finalize.compile=true"])
    assert report.device == "cpu, training in bf16, finalize compiled"
    expected = "cuda:0 (" if CUDA else "cpu, training in fp32"
    assert workflow.validate("p.yaml").device.startswith(expected)


def test_ray_trials_run_where_their_reservation_puts_them() -> None:
    ray = {"search": {"backend": "ray"}}
    assert pipeline_device(_config(**ray)) == torch.device("cpu")  # auto, no GPU reserved: the CPU
    assert pipeline_device(_config(**ray, device="cpu")) == torch.device("cpu")
    gpus = {**ray, "ray": {"gpus_per_trial": 0.25}}  # the driver: its GPU, or the CPU where it has none
    assert pipeline_device(_config(**gpus)) == (torch.device("cuda", 0) if CUDA else torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"needs ray\.gpus_per_trial > 0") as info:
        pipeline_device(_config(**ray, device="cuda"))
    assert info.value.key == "ray.gpus_per_trial"
    with pytest.raises(ConfigError, match=r"write device: cuda or auto, not cuda:1") as info:
        pipeline_device(_config(**gpus, device="cuda:1"))
    assert info.value.key == "device"
    oneshot = {"search": {"backend": "ray", "strategy": "oneshot"}}  # scored in this process
    assert pipeline_device(_config(**oneshot, device="cpu")) == torch.device("cpu")


def test_a_run_in_bf16_goes_end_to_end_and_keys_its_dense_cache_apart(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "name: mixed\nprecision: bf16\nmodel: {arch: cnn, widths: [8, 16], train: {epochs: 2}}\n"
        "search: {trials: 2, space: {finetune: {epochs: 1}}}\nfinalize: {epochs: 1, onnx: false}\n"
        "latency: {repeats: 5, warmup: 1}\ntracking: {register: false}\n"
    )
    result = workflow.run("p.yaml")
    assert result.concluded and result.members
    assert all(0.1 < member.test_accuracy <= 1 for member in result.members)
    caches = sorted((tmp_path / "mlflow" / "cache").glob("dense-*.pt"))
    workflow.run("p.yaml", overrides=["precision=fp32", "search.trials=1", "search.study=fp32"])
    assert len(sorted((tmp_path / "mlflow" / "cache").glob("dense-*.pt"))) == len(caches) + 1


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_a_run_on_the_gpu_goes_end_to_end_and_exports_cpu_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "name: gpu\ndevice: cuda\nprecision: bf16\nmodel: {arch: cnn, widths: [8, 16], train: {epochs: 2}}\n"
        "search: {trials: 2, space: {finetune: {epochs: 1}}}\nfinalize: {epochs: 1}\nlatency: {repeats: 5, warmup: 1}\n"
    )
    result = workflow.run("p.yaml")
    assert result.concluded and result.members
    assert all(0.1 < member.test_accuracy <= 1 for member in result.members)
    assert workflow.validate("p.yaml").device.startswith("cuda:0 (")
