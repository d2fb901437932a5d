"""The Optuna backend: a multi-objective study in an RDB storage (sqlite by default, PostgreSQL for teams).

Several processes may run the same study (``autoprune run --resume`` on a shared storage): the budget
is counted in the storage, a heartbeat marks trials of killed processes as failed, and each trial
number maps to exactly one MLflow child run.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, Trial, TrialState

from ...engine import Candidate
from ...errors import ConfigError, TrialFailed
from .._objective import CandidateEvaluator, Objectives, TrialRecord, TrialReporter
from .._space import SearchSpace
from ._base import Budget, SearchBackend
from ._lock import storage_lock
from ._storage import never_beaten, open_storage

__all__ = ["OptunaBackend", "make_sampler"]

log = logging.getLogger("autoprune")


_OPTUNA_FAILURE = re.compile(
    r"Trial \d+ failed with (parameters: .* because of the following error: TrialFailed\(|value None\.$)", re.S
)


def _quiet_failed_trials(record: logging.LogRecord) -> bool:
    """Drops Optuna's report of a failed trial: the line with a traceback when our objective failed it
    on purpose (`TrialFailed`: the search has recorded the reason on the trial), and the "failed with
    value None" line that follows any failure."""
    return not _OPTUNA_FAILURE.match(record.getMessage())


RESULT_ATTR = "autoprune"
DUPLICATE_ATTR = "duplicate_of"
_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.PRUNED: "skipped",
    TrialState.WAITING: "waiting",
}


def make_sampler(
    name: str, *, seed: int, trials: int, population_size: int | None = None
) -> optuna.samplers.BaseSampler:
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


def to_record(trial: FrozenTrial, fixed: Mapping[str, Any] | None = None) -> TrialRecord:
    """Our view of an Optuna trial (what it measured lives in one user attribute)."""
    attrs = trial.user_attrs.get(RESULT_ATTR, {})
    seconds = (
        (trial.datetime_complete - trial.datetime_start).total_seconds()
        if trial.datetime_complete and trial.datetime_start
        else 0.0
    )
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


def _candidate_of(space: SearchSpace, params: Mapping[str, Any]) -> Candidate | None:
    """The candidate of an earlier trial's parameters; None where this space cannot read them (a
    study resumed with another space)."""
    try:
        return space.candidate(params)
    except (KeyError, TypeError, ValueError):
        return None


class _Accounting:
    """One backend session's evaluator, objectives and reporter, and the budget rules every backend
    applies to a shared study: completed trials count toward the
    budget, a RUNNING trial holds a place only for later-numbered ones (numbers order the workers'
    claims), duplicate proposals are skipped up to ``budget.trials`` times, and failures beyond
    ``max_failed_trials`` end the session."""

    def __init__(
        self,
        backend: OptunaBackend,
        evaluator: CandidateEvaluator,
        objectives: Objectives,
        reporter: TrialReporter,
        budget: Budget,
    ) -> None:
        self.backend = backend
        self.evaluator = evaluator
        self.objectives = objectives
        self.reporter = reporter
        self.budget = budget
        self.failures_at_start = backend._count(TrialState.FAIL)
        self.duplicates = 0
        self._candidates: dict[int, Candidate | None] = {}  # finished trial -> its candidate (params never change)

    def budget_taken(self, number: int | None) -> bool:
        """Whether the budget leaves no room for trial ``number`` (``None``: a trial not asked yet)."""
        taken = self.backend.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        busy = sum(t.state == TrialState.COMPLETE or number is None or t.number < number for t in taken)
        return busy >= self.budget.trials

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
        done = self.backend.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
        for trial in done:
            if trial.number not in self._candidates:
                self._candidates[trial.number] = _candidate_of(space, trial.params)
        twin = next((t.number for t in done if self._candidates[t.number] == candidate), None)
        self.duplicates += twin is not None
        return twin

    def failed_out(self) -> bool:
        """True (and the backend's stop reason set) once this session saw ``max_failed_trials`` failures."""
        limit = self.budget.max_failed_trials
        failed = self.backend._count(TrialState.FAIL) - self.failures_at_start
        if limit is not None and failed >= limit:
            self.backend._stop_reason = f"{failed} trials failed (search.max_failed_trials = {limit})"
            self.backend.failed_out = True
            return True
        return False


_S = TypeVar("_S", bound=_Accounting)


class _Session(_Accounting):
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
        outcome = {"metrics": record.metrics, "epochs": record.epochs, "kept": record.kept, "error": record.error}
        trial.set_user_attr(RESULT_ATTR, outcome)  # one storage write for everything the trial measured
        if record.state == "failed":
            raise TrialFailed(record.error or "trial failed")
        for key, value in record.constraints.items():
            trial.set_constraint(key, value)
        return self.objectives.values(record.metrics)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.PRUNED:
            self.reporter.trial_finished(to_record(trial, self.evaluator.space.fixed))
        if self.backend._count(TrialState.COMPLETE) >= self.budget.trials or self.failed_out():
            study.stop()


class OptunaBackend(SearchBackend):
    """Runs the search as an Optuna study.

    Creating the backend only connects to the storage; `open` then picks or creates the study, so a
    bad storage URL is reported before anything is trained or written.

    Args:
        storage_url: Optuna RDB URL.
        study_name: Base study name (the pipeline's). A new search takes the first free name of
            ``name``, ``name#2``, ``name#3``... (``#`` cannot appear in a pipeline name, so two
            pipelines never share a study) and earlier searches are never touched; ``resume``
            continues the latest of them.
        objectives: What the study optimises (sets its directions and metric names).
        sampler: Sampler name; ``seed``, ``trials`` and ``population_size`` as for `make_sampler`.
        heartbeat_s: Heartbeat of running trials; a trial silent for 3 beats is failed.
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
        heartbeat_s: int = 10,
    ) -> None:
        self.storage_url = storage_url
        self.heartbeat_s = heartbeat_s
        with storage_lock(storage_url, None, "autoprune:storage"):  # workers starting together create tables once
            self.storage = open_storage(storage_url, heartbeat_s=heartbeat_s)
        self.base_name = study_name
        self.objectives = objectives
        self._sampler_args = {"name": sampler, "seed": seed, "trials": trials, "population_size": population_size}
        self._study: optuna.Study | None = None
        self._fixed: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self.failed_out = False

    def lock(self, purpose: str = "") -> contextlib.AbstractContextManager[None]:
        """An exclusive lock among the processes working on this pipeline's studies."""
        return storage_lock(
            self.storage_url, getattr(self.storage, "engine", None), f"autoprune:{self.base_name}{purpose}"
        )

    def open(self, *, resume: bool) -> bool:
        """Load the latest study (``resume``) or create a new one; hold `lock` around this.
        Returns True when the study was created now."""
        name = self._pick_name(self.base_name, resume)
        created = name not in set(optuna.get_all_study_names(self.storage))
        study = optuna.create_study(
            storage=self.storage, study_name=name, directions=self.objectives.directions, load_if_exists=True
        )
        if list(study.directions) != [optuna.study.StudyDirection[d.upper()] for d in self.objectives.directions]:
            raise ConfigError(
                f"study {name!r} optimises other objectives than this pipeline's; start a new search "
                "(drop --resume) or restore the objectives",
                key="objectives",
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(self.objectives.metrics)
        self._study = study
        study.sampler = self.fresh_sampler()
        return created

    def fresh_sampler(self) -> optuna.samplers.BaseSampler:
        """The pipeline's sampler, seeded past the study's trials: a resumed session continues the
        random stream instead of replaying the first session's proposals."""
        args = dict(self._sampler_args)
        args["seed"] += len(self.study.get_trials(deepcopy=False))
        return make_sampler(args.pop("name"), **args)

    def discard(self) -> None:
        """Delete the study if it holds no trial (undo an `open` whose setup failed)."""
        if self._study is not None and not self._study.get_trials(deepcopy=False):
            optuna.delete_study(study_name=self._study.study_name, storage=self.storage)
            self._study = None

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            raise RuntimeError("call OptunaBackend.open() first")
        return self._study

    @property
    def study_name(self) -> str:
        return self.study.study_name

    def _pick_name(self, base: str, resume: bool) -> str:
        existing = set(optuna.get_all_study_names(self.storage))
        numbered = sorted(
            (int(m.group(1)) if m.group(1) else 1, name)
            for name in existing
            if (m := re.fullmatch(re.escape(base) + r"(?:#(\d+))?", name))
        )
        if resume:
            return numbered[-1][1] if numbered else base
        if base not in existing:
            return base
        return f"{base}#{numbered[-1][0] + 1}"

    def fail_stale_trials(self) -> None:
        """Mark trials whose process stopped beating as failed (Optuna does it when a trial starts),
        and trials whose process died before their first beat (Optuna skips those: they would stay
        RUNNING for good)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
        for trial_id in never_beaten(self.storage, self.study.study_name, grace_s=3 * self.heartbeat_s):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # it just finished
                self.storage.set_trial_state_values(trial_id, TrialState.FAIL)

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

    def study_params(self, study_name: str) -> dict[int, dict[str, Any]]:
        """The exact parameters of every trial of another study in this storage, by trial number
        (empty when there is no such study)."""
        try:
            study = optuna.load_study(study_name=study_name, storage=self.storage)
        except KeyError:  # no such study
            return {}
        return {trial.number: dict(trial.params) for trial in study.get_trials(deepcopy=False)}

    def records(self) -> list[TrialRecord]:
        return [to_record(t, self._fixed) for t in self.study.get_trials(deepcopy=False)]

    def _count(self, *states: TrialState) -> int:
        return len(self.study.get_trials(deepcopy=False, states=states))

    def settle(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until no trial is RUNNING: trials of killed workers are failed
        once their heartbeat is stale; live workers' trials finish. Returns True when none runs."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.fail_stale_trials()
            if not self._count(TrialState.RUNNING):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(1.0, self.heartbeat_s / 2))

    def run(
        self, evaluator: CandidateEvaluator, objectives: Objectives, reporter: TrialReporter, budget: Budget
    ) -> list[TrialRecord]:
        """Run trials until ``budget`` is spent (counted in the storage, across workers and sessions).

        Proposals identical to a finished trial are skipped (kept as PRUNED, "duplicate of tN") rather
        than trained again; after ``budget.trials`` such skips they are evaluated anyway.
        """
        session = self._begin(_Session, evaluator, objectives, reporter, budget)

        def optimize(timeout: float | None) -> None:
            self.study.optimize(
                session.objective,
                timeout=timeout,
                callbacks=[session.after_trial],
                catch=(TrialFailed,),
                gc_after_trial=False,
            )

        self._spend(session, optimize)
        return self.records()

    def _begin(
        self,
        kind: type[_S],
        evaluator: CandidateEvaluator,
        objectives: Objectives,
        reporter: TrialReporter,
        budget: Budget,
    ) -> _S:
        """Reset the per-run state and start a session of ``kind``."""
        self._fixed = evaluator.space.fixed
        self._stop_reason = None
        self.failed_out = False
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        logging.getLogger("optuna.study._optimize").addFilter(_quiet_failed_trials)  # a no-op once added
        return kind(self, evaluator, objectives, reporter, budget)

    def _spend(self, session: _Accounting, run_round: Callable[[float | None], None]) -> None:
        """Call ``run_round(seconds left)`` until the budget is spent, the time is up or too many
        trials failed. A round that ends short of the budget found it taken: by live workers (they
        finish it) or by trials of a killed one (failed once their heartbeat is stale), so wait for
        them before the next round."""
        budget, started = session.budget, time.monotonic()
        while self._count(TrialState.COMPLETE) < budget.trials and not session.failed_out():
            remaining = None if budget.timeout_s is None else budget.timeout_s - (time.monotonic() - started)
            if remaining is not None and remaining <= 0:
                self._stop_reason = f"the time budget of {budget.timeout_s:g} s ran out"
                break
            run_round(remaining)
            if self._count(TrialState.COMPLETE) >= budget.trials or session.failed_out():
                break
            if budget.timeout_s is not None and time.monotonic() - started >= budget.timeout_s:
                self._stop_reason = f"the time budget of {budget.timeout_s:g} s ran out"
                break
            if not self.settle(4 * self.heartbeat_s):
                break

    def best_trial_numbers(self) -> set[int]:
        """Optuna's own front (constraints considered), for cross-checking ours."""
        return {trial.number for trial in self.study.best_trials}
