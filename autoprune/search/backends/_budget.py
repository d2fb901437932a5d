"""The budget rules every trial strategy applies to a shared study, and the loop that spends it.

Completed trials count toward the budget; a RUNNING trial holds a place only for later-numbered ones
(numbers order the workers' claims); duplicate proposals are skipped up to ``budget.trials`` times;
failures beyond ``max_failed_trials`` end the session.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from optuna.trial import TrialState as OptunaState

from ..._vocab import TrialState
from ...engine import Candidate
from .._contract import Budget, SearchOutcome
from .._evaluator import CandidateEvaluator, TrialReporter
from .._space import SearchSpace
from .._study import Study

__all__ = ["BudgetRules", "spend"]


def _candidate_of(space: SearchSpace, params: Mapping[str, Any]) -> Candidate | None:
    """The candidate of an earlier trial's parameters; None where this space cannot read them (a
    study resumed with another space)."""
    try:
        return space.candidate(params)
    except (KeyError, TypeError, ValueError):
        return None


class BudgetRules:
    """One session's evaluator, reporter and budget on a shared study (see the module docstring)."""

    def __init__(self, study: Study, evaluator: CandidateEvaluator, reporter: TrialReporter, budget: Budget) -> None:
        self.study = study
        self.evaluator = evaluator
        self.reporter = reporter
        self.budget = budget
        self.failures_at_start = study.count(TrialState.FAILED)
        self.duplicates = 0
        self.stop_reason: str | None = None
        self.failed_out = False
        self._candidates: dict[int, Candidate | None] = {}  # finished trial -> its candidate (params never change)

    def outcome(self) -> SearchOutcome:
        return SearchOutcome(self.stop_reason, self.failed_out)

    def budget_taken(self, number: int | None) -> bool:
        """Whether the budget leaves no room for trial ``number`` (``None``: a trial not asked yet)."""
        taken = self.study.trials(TrialState.COMPLETE, TrialState.RUNNING)
        busy = sum(t.state == OptunaState.COMPLETE or number is None or t.number < number for t in taken)
        return busy >= self.budget.trials

    def spent(self) -> bool:
        return self.study.count(TrialState.COMPLETE) >= self.budget.trials

    def twin(self, params: Mapping[str, Any]) -> int | None:
        """The number of a finished trial that evaluated the same candidate, while skips are allowed.

        The same candidate means the same parameters, or parameters the space turns into the same
        plan and recipe (offsets that push a group past its range are kept inside it, so a spread
        space near its bounds proposes the same plan many ways); with the search's one seed its
        evaluation would repeat the earlier trial's."""
        if self.duplicates >= self.budget.trials:
            return None
        space = self.evaluator.space
        candidate = space.candidate(params)
        done = self.study.trials(TrialState.COMPLETE, TrialState.FAILED)
        for trial in done:
            if trial.number not in self._candidates:
                self._candidates[trial.number] = _candidate_of(space, trial.params)
        twin = next((t.number for t in done if self._candidates[t.number] == candidate), None)
        self.duplicates += twin is not None
        return twin

    def too_many_failures(self) -> bool:
        """True (and the stop reason set) once this session saw ``max_failed_trials`` failures."""
        limit = self.budget.max_failed_trials
        failed = self.study.count(TrialState.FAILED) - self.failures_at_start
        if limit is not None and failed >= limit:
            self.stop_reason = f"{failed} trials failed (search.max_failed_trials = {limit})"
            self.failed_out = True
        return self.failed_out


def spend(rules: BudgetRules, run_round: Callable[[float | None], None]) -> SearchOutcome:
    """Call ``run_round(seconds left)`` until the budget is spent, the time is up or too many trials
    failed. A round that ends short of the budget found it taken: by live workers (they finish it) or
    by trials of a killed one (failed once their heartbeat is stale), so wait for them before the
    next round."""
    budget, study, started = rules.budget, rules.study, time.monotonic()
    timed_out = f"the time budget of {budget.timeout_s:g} s ran out" if budget.timeout_s is not None else None
    while not rules.spent() and not rules.too_many_failures():
        remaining = None if budget.timeout_s is None else budget.timeout_s - (time.monotonic() - started)
        if remaining is not None and remaining <= 0:
            rules.stop_reason = timed_out
            break
        run_round(remaining)
        if rules.spent() or rules.too_many_failures():
            break
        if budget.timeout_s is not None and time.monotonic() - started >= budget.timeout_s:
            rules.stop_reason = timed_out
            break
        if not study.settle(4 * study.heartbeat_s):
            break
    return rules.outcome()
