"""``autoprune schedule render``: manifests that parse and carry the command, the schedule and the resources."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from autoprune.cli import main

PIPELINE = """\
name: nightly_digits
schedule:
  cron: "30 2 * * *"
  timezone: Europe/Berlin
  image: registry.example/autoprune:1.0
  ray_address: ray://ray-head.ml:10001
  workers: 3
  resources: {cpu: 4, memory: 8Gi, gpu: 1}
  args: [--set, "tracking.uri=http://mlflow.ml:5000"]
"""


def _render(tmp_path: Path, text: str) -> tuple[int, Path]:
    pipeline = tmp_path / "nightly.yaml"
    pipeline.write_text(textwrap.dedent(text))
    out = tmp_path / "deploy"
    with pytest.raises(SystemExit) as info:
        main(["schedule", "render", str(pipeline), "--out", str(out)])
    return int(info.value.code or 0), out


def test_cronjob_runs_retrain_on_the_schedule_with_the_resources(tmp_path: Path) -> None:
    code, out = _render(tmp_path, PIPELINE)
    assert code == 0
    cronjob = yaml.safe_load((out / "nightly_digits-cronjob.yaml").read_text())
    assert cronjob["apiVersion"] == "batch/v1" and cronjob["kind"] == "CronJob"
    assert cronjob["metadata"]["name"] == "autoprune-retrain-nightly-digits"
    spec = cronjob["spec"]
    assert spec["schedule"] == "30 2 * * *" and spec["timeZone"] == "Europe/Berlin"
    assert spec["concurrencyPolicy"] == "Forbid"
    container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/autoprune:1.0"
    assert container["command"] == [
        "autoprune",
        "retrain",
        "pipelines/nightly.yaml",
        "--backend",
        "ray",
        "--address",
        "ray://ray-head.ml:10001",
        "--set",
        "tracking.uri=http://mlflow.ml:5000",
    ]
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "8Gi"}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_rayjob_and_raycronjob_carry_the_entrypoint_schedule_and_workers(tmp_path: Path) -> None:
    code, out = _render(tmp_path, PIPELINE)
    assert code == 0
    rayjob = yaml.safe_load((out / "nightly_digits-rayjob.yaml").read_text())
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    spec = rayjob["spec"]
    # inside its own cluster the job needs no address
    assert (
        spec["entrypoint"]
        == "autoprune retrain pipelines/nightly.yaml --backend ray --set tracking.uri=http://mlflow.ml:5000"
    )
    assert spec["shutdownAfterJobFinishes"] is True
    assert rayjob["metadata"]["annotations"]["autoprune/schedule"] == "30 2 * * *"
    workers = spec["rayClusterSpec"]["workerGroupSpecs"][0]
    assert workers["replicas"] == 3
    assert workers["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] == "8Gi"
    cron = yaml.safe_load((out / "nightly_digits-raycronjob.yaml").read_text())
    assert cron["kind"] == "RayCronJob" and cron["spec"]["schedule"] == "30 2 * * *"
    assert cron["spec"]["jobTemplate"] == spec
    crontab = (out / "nightly_digits.crontab").read_text().splitlines()[-1]
    assert crontab.startswith("30 2 * * * cd ") and "autoprune retrain" in crontab and "nightly.yaml" in crontab


def test_rendering_without_a_schedule_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _render(tmp_path, "name: plain\n")
    assert code == 2
    assert "schedule: the pipeline has no schedule: block" in capsys.readouterr().err
    assert not out.exists()
