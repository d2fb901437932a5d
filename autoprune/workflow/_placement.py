"""Where a pipeline's models run: its ``device`` resolved on this machine, checked against its backend."""

from __future__ import annotations

import logging

import torch

from .. import engine
from ..config import PipelineConfig
from ..errors import ConfigError

__all__ = ["pipeline_device"]

log = logging.getLogger("autoprune")


def pipeline_device(config: PipelineConfig) -> torch.device:
    """The device the pipeline's ``device`` names here (``auto``: the first GPU when there is one).

    With the Ray backend's trials, a trial runs on the GPU Ray reserved for it (``ray.gpus_per_trial``
    > 0; 0.25 lets 4 trials share one) and on the CPU without one; the device named here is then the
    driver's (dense training, finalize), the CPU when this machine has no GPU but the cluster's workers may.

    Raises:
        ConfigError: The device is not on this machine, or a GPU is asked of Ray trials that reserve none.
    """
    if not (config.search.backend == "ray" and config.search.strategy == "trials"):
        return engine.resolve_device(config.device)
    return _ray_driver_device(config)


def _ray_driver_device(config: PipelineConfig) -> torch.device:
    """The driver's device when Ray runs the trials: the evaluator reaches the workers as it is, so
    it holds no GPU tensor a worker without that GPU could not load."""
    if config.ray.gpus_per_trial == 0:
        if config.device.startswith("cuda") or config.device == "mps":
            raise ConfigError(
                f"device {config.device} with the Ray backend needs ray.gpus_per_trial > 0 (a trial sees only the "
                "GPUs it reserves; 0.25 shares one GPU among 4 trials), or device: auto or cpu",
                key="ray.gpus_per_trial",
            )
        if config.device == "auto" and torch.cuda.is_available():
            log.info("device auto: Ray trials reserve no GPU (ray.gpus_per_trial: 0), so the search runs on the CPU")
        return torch.device("cpu")
    if config.device not in ("auto", "cuda"):
        raise ConfigError(
            f"ray.gpus_per_trial reserves a GPU for each trial, which runs on it: write device: cuda or auto, not "
            f"{config.device} (or set ray.gpus_per_trial: 0)",
            key="device",
        )
    if not torch.cuda.is_available():
        log.info("no GPU here: the driver trains and finalizes on the CPU; trials run on their reserved GPUs")
        return torch.device("cpu")
    return torch.device("cuda", 0)
