"""The ``trials`` strategy on one machine: Optuna's ``optimize`` loop on the pipeline's study, each
trial one engine call (prune, fine-tune, evaluate, measure) in this process."""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, Trial

from ..._vocab import TrialState
from ...errors import TrialFailed
from .._adapter import quiet_failed_trials
from .._contract import Budget, SearchOutcome, SearchStrategy
from .._evaluator import CandidateEvaluator, TrialReporter
from .._study import DUPLICATE_ATTR, Study, to_record
from ._budget import BudgetRules, spend

__all__ = ["OptunaBackend"]

log = logging.getLogger("autoprune")


def _suggest(trial: Trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise TypeError(f"unsupported distribution {distribution!r}")


class _Session(BudgetRules):
    """One `OptunaBackend.run`: the objective and the after-trial callback Optuna calls."""

    def objective(self, trial: Trial) -> list[float]:
        if self.budget_taken(trial.number):
            trial.study.stop()
            raise optuna.TrialPruned("the study's trial budget is already taken")
        space = self.evaluator.space
        params = {name: _suggest(trial, name, dist) for name, dist in space.distributions.items()}
        twin = self.twin(params)
        if twin is not None:
            trial.set_user_attr(DUPLICATE_ATTR, twin)
            raise optuna.TrialPruned(f"duplicate of trial {twin}")
        self.reporter.trial_started(trial.number, space.logged_params(params))
        record, _ = self.evaluator(
            trial.number, params, on_epoch=lambda r: self.reporter.epoch_finished(trial.number, r)
        )
        self.study.store_outcome(trial, record)
        if record.state == TrialState.FAILED:
            raise TrialFailed(record.error or "trial failed")
        return self.study.objectives.values(record.metrics)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != optuna.trial.TrialState.PRUNED:
            self.reporter.trial_finished(to_record(trial, self.study.fixed))
        if self.spent() or self.too_many_failures():
            study.stop()


class OptunaBackend(SearchStrategy):
    """Runs the ``trials`` strategy with Optuna's ``optimize`` in this process.

    Proposals identical to a finished trial are skipped (kept as skipped, "duplicate of tN") rather
    than trained again; after ``budget.trials`` such skips they are evaluated anyway.
    """

    name = "optuna"

    def run(
        self, study: Study, evaluator: CandidateEvaluator, reporter: TrialReporter, budget: Budget
    ) -> SearchOutcome:
        """Run trials until ``budget`` is spent (counted in the storage, across workers and sessions)."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        quiet_failed_trials()
        session = _Session(study, evaluator, reporter, budget)

        def optimize(timeout: float | None) -> None:
            study.optuna.optimize(
                session.objective,
                timeout=timeout,
                callbacks=[session.after_trial],
                catch=(TrialFailed,),
                gc_after_trial=False,
            )

        return spend(session, optimize)

    def describe(self) -> str:
        return "trials: each candidate pruned and fine-tuned in turn (Optuna, this process)"
