"""Scheduled retraining manifests: a Kubernetes CronJob, a KubeRay RayJob (and RayCronJob), a crontab line.

``autoprune schedule render PIPELINE.yaml`` writes them into ``deploy/`` from the pipeline's
``schedule:`` block. Every one runs the same command, ``autoprune retrain <pipeline>``, so a
scheduled job does exactly what a person does by hand.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from .config import LoadedPipeline, ScheduleConfig
from .errors import ConfigError

__all__ = ["render", "retrain_command"]

RAY_VERSION = "2.60.0"


def retrain_command(loaded: LoadedPipeline, schedule: ScheduleConfig, *, ray_address: str | None) -> list[str]:
    """The retrain command as an argument list, with the pipeline's path inside the image."""
    path = schedule.pipeline_path or f"pipelines/{loaded.path.name}"
    command = ["autoprune", "retrain", path, "--backend", "ray"]
    return command + (["--address", ray_address] if ray_address else []) + list(schedule.args)


def _resources(schedule: ScheduleConfig) -> dict[str, Any]:
    amounts: dict[str, Any] = {"cpu": f"{schedule.resources.cpu:g}", "memory": schedule.resources.memory}
    limits = dict(amounts)
    if schedule.resources.gpu:
        limits["nvidia.com/gpu"] = schedule.resources.gpu
    return {"requests": amounts, "limits": limits}


def _env() -> list[dict[str, str]]:
    return [{"name": "RAY_USAGE_STATS_ENABLED", "value": "0"}]


def _cronjob(name: str, loaded: LoadedPipeline, schedule: ScheduleConfig) -> dict[str, Any]:
    container = {
        "name": "retrain",
        "image": schedule.image,
        "command": retrain_command(loaded, schedule, ray_address=schedule.ray_address),
        "resources": _resources(schedule),
        "env": _env(),
    }
    spec: dict[str, Any] = {
        "schedule": schedule.cron,
        "concurrencyPolicy": "Forbid",  # retrain also locks, but a second pod should not even start
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}
        },
    }
    if schedule.timezone:
        spec["timeZone"] = schedule.timezone
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _metadata(name, schedule), "spec": spec}


def _rayjob_spec(loaded: LoadedPipeline, schedule: ScheduleConfig) -> dict[str, Any]:
    def pod(container_name: str) -> dict[str, Any]:
        container = {"name": container_name, "image": schedule.image, "resources": _resources(schedule), "env": _env()}
        return {"spec": {"containers": [container]}}

    cluster: dict[str, Any] = {
        "rayVersion": RAY_VERSION,
        "headGroupSpec": {"rayStartParams": {"dashboard-host": "0.0.0.0"}, "template": pod("ray-head")},
        "workerGroupSpecs": [],
    }
    if schedule.workers:
        cluster["workerGroupSpecs"].append(
            {
                "groupName": "trials",
                "replicas": schedule.workers,
                "minReplicas": schedule.workers,
                "maxReplicas": schedule.workers,
                "rayStartParams": {},
                "template": pod("ray-worker"),
            }
        )
    return {
        # inside the RayJob's cluster the job's RAY_ADDRESS points at the head: no --address needed
        "entrypoint": shlex.join(retrain_command(loaded, schedule, ray_address=None)),
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": 600,
        "rayClusterSpec": cluster,
    }


def _metadata(name: str, schedule: ScheduleConfig, **annotations: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": schedule.namespace,
        "labels": {"app.kubernetes.io/part-of": "autoprune"},
    }
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def render(loaded: LoadedPipeline, out: Path) -> list[Path]:
    """Write ``<name>-cronjob.yaml``, ``<name>-rayjob.yaml``, ``<name>-raycronjob.yaml`` and
    ``<name>.crontab`` into ``out``; returns the paths.

    Raises:
        ConfigError: The pipeline has no ``schedule:`` block.
    """
    config = loaded.config
    schedule = config.schedule
    if schedule is None:
        raise ConfigError(
            "the pipeline has no schedule: block (cron, image, resources, ...); add one to render manifests",
            key="schedule",
        )
    name = f"autoprune-retrain-{config.name}".lower().replace("_", "-")[:52]
    rayjob = _rayjob_spec(loaded, schedule)
    documents = {
        f"{config.name}-cronjob.yaml": _cronjob(name, loaded, schedule),
        # one retrain on a cluster of its own, started by hand or by the RayCronJob below
        f"{config.name}-rayjob.yaml": {
            "apiVersion": "ray.io/v1",
            "kind": "RayJob",
            "metadata": _metadata(name, schedule, **{"autoprune/schedule": schedule.cron}),
            "spec": rayjob,
        },
        # KubeRay >= 1.6 (alpha): creates the RayJob above on the schedule
        f"{config.name}-raycronjob.yaml": {
            "apiVersion": "ray.io/v1",
            "kind": "RayCronJob",
            "metadata": _metadata(name, schedule),
            "spec": {
                "schedule": schedule.cron,
                **({"timeZone": schedule.timezone} if schedule.timezone else {}),
                "jobTemplate": rayjob,
            },
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, document in documents.items():
        path = out / file_name
        path.write_text(
            f"# rendered by `autoprune schedule render {loaded.path.name}`; edit the pipeline's schedule: block "
            "instead\n" + yaml.safe_dump(document, sort_keys=False)
        )
        written.append(path)
    crontab = out / f"{config.name}.crontab"
    project = Path.cwd().resolve()
    command = shlex.join([str(project / ".venv" / "bin" / "autoprune"), "retrain", str(loaded.path.resolve())])
    crontab.write_text(
        f"# install with: crontab -l | cat - {crontab.name} | crontab -\n"
        f"{schedule.cron} cd {shlex.quote(str(project))} && {command} >> mlflow/retrain.log 2>&1\n"
    )
    written.append(crontab)
    return written
