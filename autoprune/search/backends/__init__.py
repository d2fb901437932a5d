"""Search backends: Optuna (one machine or a shared RDB storage) and, at scale, Ray Tune."""

from __future__ import annotations

from ._base import Budget, SearchBackend
from ._lock import storage_lock
from ._optuna import OptunaBackend, make_sampler, to_record
from ._ray import RayBackend, join_ray, leave_ray
from ._storage import open_storage

__all__ = [
    "Budget",
    "OptunaBackend",
    "RayBackend",
    "SearchBackend",
    "join_ray",
    "leave_ray",
    "make_sampler",
    "open_storage",
    "storage_lock",
    "to_record",
]
