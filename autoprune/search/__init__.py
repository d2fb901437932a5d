"""The search: a space bound to a model's groups, the objective around the engine call, backends,
and Pareto fronts. It never imports MLflow: results go out through a `TrialReporter`."""

from __future__ import annotations

from ._front import architecture_latency, front_losses, front_of
from ._objective import (
    KEPT_PREFIX,
    SKIPPED_METRIC,
    CandidateEvaluator,
    DenseReference,
    NullReporter,
    Objectives,
    TrialRecord,
    TrialReporter,
    constraint_values,
)
from ._pareto import dominates, hypervolume, non_dominated, pareto_ranks
from ._space import FINETUNE_PARAMS, RATIO_PREFIX, SearchSpace
from .backends import Budget, OptunaBackend, RayBackend, SearchBackend, join_ray, leave_ray

__all__ = [
    "FINETUNE_PARAMS",
    "KEPT_PREFIX",
    "RATIO_PREFIX",
    "SKIPPED_METRIC",
    "Budget",
    "CandidateEvaluator",
    "DenseReference",
    "NullReporter",
    "Objectives",
    "OptunaBackend",
    "RayBackend",
    "SearchBackend",
    "SearchSpace",
    "TrialRecord",
    "TrialReporter",
    "architecture_latency",
    "constraint_values",
    "dominates",
    "front_losses",
    "front_of",
    "hypervolume",
    "join_ray",
    "leave_ray",
    "non_dominated",
    "pareto_ranks",
]
