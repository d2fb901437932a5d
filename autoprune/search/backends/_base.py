"""The small base every search backend implements (Optuna here, Ray Tune for clusters)."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._objective import CandidateEvaluator, Objectives, TrialRecord, TrialReporter

__all__ = ["Budget", "SearchBackend"]


@dataclass(frozen=True)
class Budget:
    """When a search ends: ``trials`` completed trials in the study (across sessions and workers),
    or ``timeout_s`` seconds of this session, or ``max_failed_trials`` failures, whichever comes first."""

    trials: int
    timeout_s: float | None = None
    max_failed_trials: int | None = None


class SearchBackend(abc.ABC):
    """Runs trials through a `CandidateEvaluator` until the budget is spent, reporting each trial."""

    name: str = ""

    @abc.abstractmethod
    def run(
        self, evaluator: CandidateEvaluator, objectives: Objectives, reporter: TrialReporter, budget: Budget
    ) -> list[TrialRecord]:
        """Run the search; return every trial of the study (earlier sessions included)."""

    @abc.abstractmethod
    def records(self) -> list[TrialRecord]:
        """Every trial the study holds so far."""

    @property
    @abc.abstractmethod
    def attrs(self) -> Mapping[str, Any]:
        """Key/values stored with the study (e.g. the MLflow parent run id)."""

    @abc.abstractmethod
    def set_attr(self, key: str, value: Any) -> None:
        """Store a key/value with the study."""

    def enqueue(self, params: Sequence[Mapping[str, Any]]) -> None:  # noqa: B027 - optional hook
        """Ask for these parameter sets first (warm start). Backends that cannot do it ignore the call."""

    @property
    def stop_reason(self) -> str | None:
        """Why the last `run` ended early (``None`` when the budget was reached)."""
        return None
