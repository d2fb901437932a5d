"""autoprune: AutoML structured-pruning search for PyTorch.

A pipeline YAML names the data, the dense model, a search space of per-group pruning ratios and
fine-tune settings, and the objectives; every candidate goes through one engine call
(`autoprune.engine.evaluate_candidate`) and MLflow records the Pareto front.
"""

from __future__ import annotations

from .errors import (
    AutoPruneError,
    ConfigError,
    DataError,
    ModelError,
    PruningError,
    TrackingError,
    TrialDiverged,
    TrialFailed,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "AutoPruneError",
    "ConfigError",
    "DataError",
    "ModelError",
    "PruningError",
    "TrackingError",
    "TrialDiverged",
    "TrialFailed",
    "UsageError",
    "__version__",
]
