"""The ``trials`` strategy's two backends: Optuna in this process (one machine, or several processes
on a shared RDB storage) and, at scale, Ray Tune."""

from __future__ import annotations

from ._optuna import OptunaBackend
from ._ray import RayBackend, join_ray, leave_ray

__all__ = ["OptunaBackend", "RayBackend", "join_ray", "leave_ray"]
