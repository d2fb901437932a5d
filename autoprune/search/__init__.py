"""The search: a space bound to a model's groups, the evaluator around the engine call, the study
that records every trial, the strategies that fill it (``trials`` with Optuna or Ray Tune; ``oneshot``),
and Pareto fronts. It never imports MLflow: results go out through a `TrialReporter`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .._vocab import Metric, TrialState
from ._contract import Budget, SearchOutcome, SearchStrategy
from ._front import architecture_latency, choose_members, front_losses, front_of
from ._lock import storage_lock
from ._pareto import dominates, hypervolume, non_dominated, pareto_ranks
from ._records import (
    FRONT_PREFIX,
    KEPT_PREFIX,
    DenseReference,
    FinalizedMember,
    Objectives,
    TrialRecord,
    constraint_values,
)

if TYPE_CHECKING:
    from ._evaluator import CandidateEvaluator, NullReporter, TrialReporter
    from ._oneshot import OneShotStrategy
    from ._space import FINETUNE_PARAMS, RATIO_PREFIX, SearchSpace
    from ._study import Study, make_sampler
    from .backends import OptunaBackend, RayBackend, join_ray, leave_ray

# What needs torch, Optuna or Ray is imported on first use: the records and fronts alone are what
# `autoprune pareto` and `export` read, and they should not wait for torch to load.
_LAZY = {
    "CandidateEvaluator": "._evaluator",
    "NullReporter": "._evaluator",
    "TrialReporter": "._evaluator",
    "OneShotStrategy": "._oneshot",
    "FINETUNE_PARAMS": "._space",
    "RATIO_PREFIX": "._space",
    "SearchSpace": "._space",
    "Study": "._study",
    "make_sampler": "._study",
    "OptunaBackend": ".backends",
    "RayBackend": ".backends",
    "join_ray": ".backends",
    "leave_ray": ".backends",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "FINETUNE_PARAMS",
    "FRONT_PREFIX",
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
