"""The search: a space bound to a model's groups, the evaluator around the engine call, the study
that records every trial, the strategies that fill it (``trials`` with Optuna or Ray Tune; ``oneshot``),
and Pareto fronts. It never imports MLflow: results go out through a `TrialReporter`."""

from __future__ import annotations

from .._vocab import Metric, TrialState
from ._contract import Budget, SearchOutcome, SearchStrategy
from ._evaluator import CandidateEvaluator, NullReporter, TrialReporter
from ._front import architecture_latency, choose_members, front_losses, front_of
from ._lock import storage_lock
from ._oneshot import OneShotStrategy
from ._pareto import dominates, hypervolume, non_dominated, pareto_ranks
from ._records import (
    FINAL_PREFIX,
    KEPT_PREFIX,
    DenseReference,
    FinalizedMember,
    Objectives,
    TrialRecord,
    constraint_values,
)
from ._space import FINETUNE_PARAMS, RATIO_PREFIX, SearchSpace
from ._study import Study, make_sampler
from .backends import OptunaBackend, RayBackend, join_ray, leave_ray

__all__ = [
    "FINAL_PREFIX",
    "FINETUNE_PARAMS",
    "KEPT_PREFIX",
    "RATIO_PREFIX",
    "Budget",
    "CandidateEvaluator",
    "DenseReference",
    "FinalizedMember",
    "Metric",
    "NullReporter",
    "Objectives",
    "OneShotStrategy",
    "OptunaBackend",
    "RayBackend",
    "SearchOutcome",
    "SearchSpace",
    "SearchStrategy",
    "Study",
    "TrialRecord",
    "TrialReporter",
    "TrialState",
    "architecture_latency",
    "choose_members",
    "constraint_values",
    "dominates",
    "front_losses",
    "front_of",
    "hypervolume",
    "join_ray",
    "leave_ray",
    "make_sampler",
    "non_dominated",
    "pareto_ranks",
    "storage_lock",
]
