"""The Optuna backend: a multi-objective study in an RDB storage (sqlite by default, PostgreSQL for teams).

Several processes may run the same study (``autoprune run --resume`` on a shared storage): the budget
is counted in the storage, a heartbeat marks trials of killed processes as failed, and each trial
number maps to exactly one MLflow child run.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, Trial, TrialState

from ..._sqlite import tune_sqlite
from ...errors import ConfigError, TrialFailed
from .._objective import CandidateEvaluator, Objectives, TrialRecord, TrialReporter
from ._base import Budget, SearchBackend

__all__ = ["OptunaBackend", "make_sampler", "open_storage"]

log = logging.getLogger("autoprune")

RESULT_ATTR = "autoprune"
_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.PRUNED: "skipped",
    TrialState.WAITING: "waiting",
}


def make_sampler(name: str, *, seed: int, trials: int, population_size: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler for ``name`` (tpe, nsga2, random, qmc), seeded."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=min(10, max(2, trials // 3)))
    if name == "nsga2":
        size = population_size or min(50, max(4, trials // 4))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=size)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    raise ConfigError(f"unknown sampler {name!r}; choose tpe, nsga2, random or qmc", key="search.sampler")


def open_storage(url: str, *, heartbeat_s: int) -> optuna.storages.RDBStorage:
    """An RDB storage with a heartbeat, so trials of killed processes end FAIL instead of RUNNING."""
    tune_sqlite()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat: stable in practice
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=heartbeat_s,
                grace_period=3 * heartbeat_s,
                engine_kwargs={"connect_args": {"timeout": 30}} if url.startswith("sqlite") else None,
            )
    except Exception as exc:  # sqlalchemy raises many types for a bad URL or an unreachable server
        raise ConfigError(f"cannot open the Optuna storage {url!r}: {type(exc).__name__}: {exc}", key="search.storage") from exc


def _suggest(trial: Trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise TypeError(f"unsupported distribution {distribution!r}")


def to_record(trial: FrozenTrial, fixed: Mapping[str, Any] | None = None) -> TrialRecord:
    """Our view of an Optuna trial (what it measured lives in one user attribute)."""
    attrs = trial.user_attrs.get(RESULT_ATTR, {})
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete and trial.datetime_start else 0.0
    return TrialRecord(
        number=trial.number,
        state=_STATES.get(trial.state, trial.state.name.lower()),
        params={**(fixed or {}), **trial.params},
        metrics=dict(attrs.get("metrics", {})),
        epochs=list(attrs.get("epochs", [])),
        kept=dict(attrs.get("kept", {})),
        constraints=dict(trial.constraints),
        error=attrs.get("error"),
        seconds=seconds,
    )


class OptunaBackend(SearchBackend):
    """Runs the search as an Optuna study.

    Args:
        storage_url: Optuna RDB URL.
        study_name: Base study name (the pipeline's); a new search without ``resume`` takes the first
            free name of ``name``, ``name-2``, ``name-3``... so earlier searches are never touched.
        resume: Continue the latest study of that name (create it if there is none).
        sampler: Sampler name; ``seed``, ``population_size`` as for `make_sampler`.
        objectives: What the study optimises (sets its directions and metric names).
    """

    name = "optuna"

    def __init__(
        self,
        storage_url: str,
        study_name: str,
        *,
        objectives: Objectives,
        sampler: str = "nsga2",
        seed: int = 0,
        trials: int = 24,
        population_size: int | None = None,
        resume: bool = False,
        heartbeat_s: int = 10,
    ) -> None:
        self.storage = open_storage(storage_url, heartbeat_s=heartbeat_s)
        self.study_name = self._pick_name(study_name, resume)
        self.study = optuna.create_study(
            storage=self.storage,
            study_name=self.study_name,
            directions=objectives.directions,
            sampler=make_sampler(sampler, seed=seed, trials=trials, population_size=population_size),
            load_if_exists=True,
        )
        if list(self.study.directions) != [optuna.study.StudyDirection[d.upper()] for d in objectives.directions]:
            raise ConfigError(
                f"study {self.study_name!r} optimises other objectives than this pipeline's; "
                "start a new search (drop --resume) or restore the objectives",
                key="objectives",
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names(objectives.metrics)
        self._fixed: dict[str, Any] = {}
        self._stop_reason: str | None = None

    def _pick_name(self, base: str, resume: bool) -> str:
        existing = set(optuna.get_all_study_names(self.storage))
        numbered = sorted(
            (int(m.group(1)) if m.group(1) else 1, name)
            for name in existing
            if (m := re.fullmatch(re.escape(base) + r"(?:-(\d+))?", name))
        )
        if resume:
            return numbered[-1][1] if numbered else base
        if base not in existing:
            return base
        number = numbered[-1][0] + 1
        return f"{base}-{number}"

    @property
    def attrs(self) -> Mapping[str, Any]:
        return self.study.user_attrs

    def set_attr(self, key: str, value: Any) -> None:
        self.study.set_user_attr(key, value)

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def enqueue(self, params: Sequence[Mapping[str, Any]]) -> None:
        for values in params:
            self.study.enqueue_trial(dict(values), skip_if_exists=True)

    def records(self) -> list[TrialRecord]:
        return [to_record(t, self._fixed) for t in self.study.get_trials(deepcopy=False)]

    def _count(self, *states: TrialState) -> int:
        return len(self.study.get_trials(deepcopy=False, states=states))

    def run(
        self, evaluator: CandidateEvaluator, objectives: Objectives, reporter: TrialReporter, budget: Budget
    ) -> list[TrialRecord]:
        space = evaluator.space
        self._fixed = space.fixed
        self._stop_reason = None
        failures_at_start = self._count(TrialState.FAIL)

        def objective(trial: Trial) -> list[float]:
            # another worker may have filled the budget while this one was finishing a trial
            busy = len(trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))) - 1
            if busy >= budget.trials:
                trial.study.stop()
                raise optuna.TrialPruned("the study's trial budget is already taken by other workers")
            params = {name: _suggest(trial, name, dist) for name, dist in space.distributions.items()}
            reporter.trial_started(trial.number, {**self._fixed, **params})
            record, _ = evaluator(trial.number, params, on_epoch=lambda r: reporter.epoch_finished(trial.number, r))
            outcome = {"metrics": record.metrics, "epochs": record.epochs, "kept": record.kept, "error": record.error}
            trial.set_user_attr(RESULT_ATTR, outcome)  # one storage write for everything the trial measured
            if record.state == "failed":
                raise TrialFailed(record.error or "trial failed")
            for key, value in record.constraints.items():
                trial.set_constraint(key, value)
            return objectives.values(record.metrics)

        def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
            if trial.state != TrialState.PRUNED:
                reporter.trial_finished(to_record(trial, self._fixed))
            finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
            complete = sum(t.state == TrialState.COMPLETE for t in finished)
            failed = len(finished) - complete - failures_at_start
            if complete >= budget.trials:
                study.stop()
            elif budget.max_failed_trials is not None and failed >= budget.max_failed_trials:
                self._stop_reason = f"{failed} trials failed (search.max_failed_trials = {budget.max_failed_trials})"
                study.stop()

        if self._count(TrialState.COMPLETE) < budget.trials:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self.study.optimize(
                objective, timeout=budget.timeout_s, callbacks=[after_trial], catch=(TrialFailed,), gc_after_trial=False
            )
            if self._stop_reason is None and self._count(TrialState.COMPLETE) < budget.trials and budget.timeout_s:
                self._stop_reason = f"the time budget of {budget.timeout_s:g} s ran out"
        return self.records()

    def best_trial_numbers(self) -> set[int]:
        """Optuna's own front (constraints considered), for cross-checking ours."""
        return {trial.number for trial in self.study.best_trials}
