"""The search contract: what a pipeline hands a search strategy and what it gets back.

A strategy (`SearchStrategy`) runs trials on a `Study` through a `CandidateEvaluator` until a
`Budget` is spent, reporting every trial to a `TrialReporter`, and says why it stopped
(`SearchOutcome`). The study is the record of truth: the records the pipeline concludes from,
the front, resume and the MLflow runs all come from it, whichever strategy filled it. The pipeline
talks to these types only; ``trials`` (Optuna, or Ray Tune on a cluster) and ``oneshot`` implement them.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from .._vocab import TrialState

if TYPE_CHECKING:
    from ._evaluator import CandidateEvaluator, TrialReporter
    from ._study import Study

__all__ = ["Budget", "SearchOutcome", "SearchStrategy"]


@dataclass(frozen=True)
class Budget:
    """When a search ends: ``trials`` completed trials in the study (across sessions and workers),
    or ``timeout_s`` seconds of this session, or ``max_failed_trials`` failures, whichever comes first."""

    trials: int
    timeout_s: float | None = None
    max_failed_trials: int | None = None


@dataclass(frozen=True)
class SearchOutcome:
    """How a strategy's `SearchStrategy.run` ended: ``stop_reason`` when before its budget was spent
    (None when it was), ``failed_out`` when too many trials failed, and the seconds of the phases it
    timed (one-shot: ``supernet``, ``candidates``, ``scoring``)."""

    stop_reason: str | None = None
    failed_out: bool = False
    seconds: Mapping[str, float] = field(default_factory=dict)


class SearchStrategy(abc.ABC):
    """Runs a search on a study until its budget is spent (see the module docstring)."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def run(
        self, study: Study, evaluator: CandidateEvaluator, reporter: TrialReporter, budget: Budget
    ) -> SearchOutcome:
        """Fill ``study`` with trials (every trial reported to ``reporter``) until ``budget`` is spent."""

    def describe(self) -> str:
        """One line on how this strategy searches (what `autoprune validate` shows)."""
        return self.name

    def prepare(self, evaluator: CandidateEvaluator, reporter: TrialReporter) -> CandidateEvaluator:
        """The evaluator the search and the conclude step use. By default the one given; a strategy that
        trains weights to cut candidates from (one-shot's supernet) returns one over them, reporting the
        epochs of that training to ``reporter``."""
        return evaluator

    def finished(self, study: Study, budget: Budget) -> bool:
        """Whether ``study`` already holds what ``budget`` asks for: a resumed search then has nothing to do.
        By default, when it has ``budget.trials`` completed trials."""
        return study.count(TrialState.COMPLETE) >= budget.trials

    def planned_trials(self, budget: Budget) -> int:
        """How many trials the study will hold when the budget is spent (what progress counts up to)."""
        return budget.trials
