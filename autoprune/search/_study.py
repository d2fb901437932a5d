"""`Study`: the record of truth of a search, an Optuna multi-objective study in an RDB storage
(sqlite by default, PostgreSQL for teams), shared by every strategy, worker and session.

Several processes may run the same study (``autoprune run --resume`` on a shared storage): the budget
is counted in the storage, a heartbeat marks trials of killed processes as failed, and each trial
number maps to exactly one MLflow child run. What a trial measured lives in one user attribute
(`TrialRecord.outcome`), written here and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, Trial
from optuna.trial import TrialState as OptunaState

from .._vocab import TrialState
from ..errors import ConfigError, UsageError
from ._adapter import named_constraints, never_beaten, set_constraints
from ._lock import storage_lock
from ._records import Objectives, TrialRecord
from ._storage import open_storage

__all__ = ["OUTCOME_ATTR", "Study", "make_sampler"]

log = logging.getLogger("autoprune")

OUTCOME_ATTR = "autoprune"  # the trial user attribute holding `TrialRecord.outcome`
DUPLICATE_ATTR = "duplicate_of"
_STATES = {
    OptunaState.COMPLETE: TrialState.COMPLETE,
    OptunaState.FAIL: TrialState.FAILED,
    OptunaState.RUNNING: TrialState.RUNNING,
    OptunaState.PRUNED: TrialState.SKIPPED,
    OptunaState.WAITING: TrialState.WAITING,
}


def make_sampler(
    name: str, *, seed: int, trials: int, population_size: int | None = None, one_writer: bool = False
) -> BaseSampler:
    """The sampler for ``name`` (tpe, nsga2, random, qmc), seeded. ``one_writer``: the study is filled by
    one process, one trial at a time (NSGA-II then counts its generations as they fill, `OneWriterNSGAII`)."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=min(10, max(2, trials // 3)))
    if name == "nsga2":
        size = population_size or min(50, max(4, trials // 4))
        if one_writer:
            from ._nsga import OneWriterNSGAII

            return OneWriterNSGAII(seed=seed, population_size=size)
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=size)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    raise ConfigError(f"must be tpe, nsga2, random or qmc, but got {name!r}", key="search.sampler")


def to_record(trial: FrozenTrial, fixed: Mapping[str, Any] | None = None) -> TrialRecord:
    """Our view of an Optuna trial (what it measured lives in one user attribute)."""
    start, end = trial.datetime_start, trial.datetime_complete
    return TrialRecord.from_outcome(
        trial.number,
        _STATES.get(trial.state, TrialState.WAITING),
        {**(fixed or {}), **trial.params},
        trial.user_attrs.get(OUTCOME_ATTR, {}),
        constraints=named_constraints(trial),
        seconds=(end - start).total_seconds() if start and end else 0.0,
    )


class Study:
    """The pipeline's study (see the module docstring).

    The constructor only stores; `connect` opens the storage (so a bad storage URL is reported before
    anything is trained or written); `open` then picks or creates the study itself.

    Args:
        storage_url: Optuna RDB URL.
        name: Base study name (the pipeline's). A new search takes the first free name of ``name``,
            ``name#2``, ``name#3``... (``#`` cannot appear in a pipeline name, so two pipelines never
            share a study) and earlier searches are never touched; ``resume`` continues the latest.
        objectives: What the study optimises (sets its directions and metric names).
        fixed: Settings the space does not search; every record carries them with its params.
        sampler: Sampler name; ``seed``, ``trials`` and ``population_size`` as for `make_sampler`.
        heartbeat_s: Heartbeat of running trials; a trial silent for 3 beats is failed.
    """

    def __init__(
        self,
        storage_url: str,
        name: str,
        *,
        objectives: Objectives,
        fixed: Mapping[str, Any] | None = None,
        sampler: str = "nsga2",
        seed: int = 0,
        trials: int = 24,
        population_size: int | None = None,
        heartbeat_s: int = 10,
    ) -> None:
        self.storage_url = storage_url
        self.base_name = name
        self.objectives = objectives
        self.fixed = dict(fixed or {})
        self.heartbeat_s = heartbeat_s
        self._sampler_args: dict[str, Any] = {
            "name": sampler,
            "seed": seed,
            "trials": trials,
            "population_size": population_size,
        }
        self._storage: optuna.storages.RDBStorage | None = None
        self._study: optuna.Study | None = None

    # --- the storage and the study ---------------------------------------------------------------

    def connect(self) -> Study:
        """Open the storage (creating its tables when new). Returns this study.

        Raises:
            ConfigError: The storage cannot be opened (with the key ``search.storage``).
        """
        if self._storage is None:
            with storage_lock(self.storage_url, None, "autoprune:storage"):  # workers starting together
                self._storage = open_storage(self.storage_url, heartbeat_s=self.heartbeat_s)
        return self

    @property
    def storage(self) -> optuna.storages.RDBStorage:
        if self._storage is None:
            raise UsageError("call Study.connect() first")
        return self._storage

    @property
    def optuna(self) -> optuna.Study:
        """The Optuna study (after `open`)."""
        if self._study is None:
            raise UsageError("call Study.open() first")
        return self._study

    @property
    def name(self) -> str:
        return self.optuna.study_name

    def lock(self, purpose: str = "") -> contextlib.AbstractContextManager[None]:
        """An exclusive lock among the processes working on this pipeline's studies."""
        engine = getattr(self._storage, "engine", None)
        return storage_lock(self.storage_url, engine, f"autoprune:{self.base_name}{purpose}")

    def open(self, *, resume: bool) -> bool:
        """Load the latest study (``resume``) or create a new one; hold `lock` around this.
        Returns True when the study was created now.

        Raises:
            ConfigError: A resumed study optimises other objectives.
        """
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
            study.set_metric_names([str(metric) for metric in self.objectives.metrics])
        self._study = study
        study.sampler = self.fresh_sampler()
        return created

    def load_latest(self) -> bool:
        """Load the latest study of this pipeline, creating none; False when there is none yet (then
        `open` must still be called before the study is used)."""
        name = self._pick_name(self.base_name, resume=True)
        if name not in set(optuna.get_all_study_names(self.storage)):
            return False
        self._study = optuna.load_study(study_name=name, storage=self.storage)
        return True

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

    def discard(self) -> None:
        """Delete the study if it holds no trial (undo an `open` whose setup failed)."""
        if self._study is not None and not self._study.get_trials(deepcopy=False):
            optuna.delete_study(study_name=self._study.study_name, storage=self.storage)
            self._study = None

    def fresh_sampler(self) -> BaseSampler:
        """The pipeline's sampler, seeded past the study's trials: a resumed session continues the
        random stream instead of replaying the first session's proposals."""
        args = dict(self._sampler_args)
        args["seed"] += len(self.optuna.get_trials(deepcopy=False))
        return make_sampler(args.pop("name"), **args)

    # --- what the study holds --------------------------------------------------------------------

    @property
    def attrs(self) -> Mapping[str, Any]:
        """Key/values stored with the study (the MLflow parent run id, the resume signature, ...)."""
        return self.optuna.user_attrs

    def set_attr(self, key: str, value: Any) -> None:
        self.optuna.set_user_attr(key, value)

    def records(self) -> list[TrialRecord]:
        """Every trial of the study, earlier sessions' and other workers' included."""
        return [to_record(t, self.fixed) for t in self.optuna.get_trials(deepcopy=False)]

    def count(self, *states: TrialState) -> int:
        """How many trials are in any of ``states``."""
        wanted = tuple(state for state, ours in _STATES.items() if ours in states)
        return len(self.optuna.get_trials(deepcopy=False, states=wanted))

    def trials(self, *states: TrialState) -> list[FrozenTrial]:
        """The Optuna trials in any of ``states`` (not copied: read them, do not change them)."""
        wanted = tuple(state for state, ours in _STATES.items() if ours in states)
        return self.optuna.get_trials(deepcopy=False, states=wanted)

    def study_params(self, study_name: str) -> dict[int, dict[str, Any]]:
        """The exact parameters of every trial of another study in this storage, by trial number
        (empty when there is no such study)."""
        try:
            other = optuna.load_study(study_name=study_name, storage=self.storage)
        except KeyError:  # no such study
            return {}
        return {trial.number: dict(trial.params) for trial in other.get_trials(deepcopy=False)}

    def best_trial_numbers(self) -> set[int]:
        """Optuna's own front (constraints considered), for cross-checking ours."""
        return {trial.number for trial in self.optuna.best_trials}

    # --- writing trials --------------------------------------------------------------------------

    def enqueue(self, params: Sequence[Mapping[str, Any]]) -> None:
        """Ask for these parameter sets first (warm start, uniform seeds)."""
        for values in params:
            self.optuna.enqueue_trial(dict(values), skip_if_exists=True)

    def ask(self, distributions: Mapping[str, BaseDistribution]) -> Trial:
        """A new RUNNING trial with its parameters sampled (an enqueued set first)."""
        with warnings.catch_warnings():  # the heartbeat of asked trials is ours to beat (Ray's driver)
            warnings.simplefilter("ignore", UserWarning)
            return self.optuna.ask(fixed_distributions=dict(distributions))

    def store_outcome(self, trial: Trial, record: TrialRecord) -> None:
        """Write what ``trial`` measured (and, when complete, its constraints) into the study."""
        trial.set_user_attr(OUTCOME_ATTR, record.outcome())  # one storage write for everything measured
        if record.state == TrialState.COMPLETE:
            set_constraints(trial, record.constraints)

    def tell(self, trial: Trial, record: TrialRecord) -> TrialRecord:
        """Store ``record`` as the outcome of an asked ``trial`` and end it; returns the stored record."""
        self.store_outcome(trial, record)
        if record.state == TrialState.COMPLETE:
            frozen = self.optuna.tell(trial, self.objectives.values(record.metrics))
        else:
            frozen = self.optuna.tell(trial, state=OptunaState.FAIL)
        return to_record(frozen, self.fixed)

    def skip(self, trial: Trial, *, duplicate_of: int | None = None) -> None:
        """End an asked trial that will not run (a duplicate, or no room in the budget) as skipped."""
        if duplicate_of is not None:
            trial.set_user_attr(DUPLICATE_ATTR, duplicate_of)
        self.optuna.tell(trial, state=OptunaState.PRUNED)

    def add(
        self, record: TrialRecord, distributions: Mapping[str, BaseDistribution], *, tag: tuple[str, Any]
    ) -> TrialRecord:
        """Add a finished trial evaluated elsewhere (a candidate of the one-shot search) with its
        ``record`` and the user attribute ``tag`` (key, value) that names where it came from; returns
        it as stored, with the number the study gave it."""
        params = {name: record.params[name] for name in distributions}
        complete = record.state == TrialState.COMPLETE
        frozen = optuna.trial.create_trial(
            state=OptunaState.COMPLETE if complete else OptunaState.FAIL,
            values=self.objectives.values(record.metrics) if complete else None,
            params=params,
            distributions=dict(distributions),
            user_attrs={OUTCOME_ATTR: record.outcome(), tag[0]: tag[1]},
            constraints=record.constraints if complete else None,
        )
        self.optuna.add_trial(frozen)
        added = [t for t in self.optuna.get_trials(deepcopy=False) if t.user_attrs.get(tag[0]) == tag[1]]
        return to_record(added[-1], self.fixed)

    def record_heartbeat(self, trial: Trial) -> None:
        """Beat for an asked trial now (a process killed before its first beat leaves it RUNNING)."""
        self.storage.record_heartbeat(self.trial_id(trial.number))

    def trial_id(self, number: int) -> int:
        """The storage's id of trial ``number`` (what heartbeats are recorded by)."""
        study_id = self.storage.get_study_id_from_name(self.name)
        return self.storage.get_trial_id_from_study_id_trial_number(study_id, number)

    # --- trials of dead processes ----------------------------------------------------------------

    def fail_stale_trials(self) -> None:
        """Mark trials whose process stopped beating as failed (Optuna does it when a trial starts),
        and trials whose process died before their first beat (Optuna skips those: they would stay
        RUNNING for good)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.optuna)
        for trial_id in never_beaten(self.storage, self.name, grace_s=3 * self.heartbeat_s):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # it just finished
                self.storage.set_trial_state_values(trial_id, OptunaState.FAIL)

    def settle(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until no trial is RUNNING: trials of killed workers are failed
        once their heartbeat is stale; live workers' trials finish. Returns True when none runs."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.fail_stale_trials()
            if not self.count(TrialState.RUNNING):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(1.0, self.heartbeat_s / 2))
