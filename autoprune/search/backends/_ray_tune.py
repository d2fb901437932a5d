"""The Ray Tune pieces of the Ray backend: the searcher on the pipeline's study, and Pareto-ranked ASHA.

This module imports Ray at the top, so only `RayBackend` imports it, when a search starts.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import Trial, TrialState
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from ...engine import EpochReport
from .._objective import KEPT_PREFIX, Objectives, constraint_values
from .._pareto import pareto_ranks
from ._optuna import DUPLICATE_ATTR, RESULT_ATTR, to_record
from ._ray import COST_KEYS, NUMBER_KEY, OUTCOME_KEY

if TYPE_CHECKING:
    from ._ray import _RaySession

__all__ = ["ParetoASHA", "StudySearcher"]


class ParetoASHA(FIFOScheduler):
    """ASHA that ranks a rung by Pareto dominance on all objectives instead of accuracy alone.

    Successive halving on accuracy stops the heavily pruned candidates first (they trail in accuracy
    after an epoch), though they make the cheap end of the front. Here a trial reaching a rung is
    ranked among every trial recorded there by non-dominated sorting of (accuracy so far, costs),
    ties broken by accuracy, and goes on if it is on the rung's front or within the best
    ``1 / reduction_factor`` (the multi-objective ASHA of Schmucker et al., 2021, with
    non-dominated sorting as the selection).
    """

    def __init__(self, objectives: Objectives, max_t: int, grace_period: int, reduction_factor: float) -> None:
        super().__init__()
        self.objectives = objectives
        self.reduction_factor = reduction_factor
        self.signs = [-1.0 if direction == "maximize" else 1.0 for direction in objectives.directions]
        metrics = objectives.metrics
        self.accuracy = metrics.index("val_accuracy") if "val_accuracy" in metrics else 0
        self.recorded: dict[int, dict[str, list[float]]] = {}
        rung = grace_period
        while rung < max_t:
            self.recorded[rung] = {}
            rung = math.ceil(rung * reduction_factor)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        metrics = self.objectives.metrics
        epoch = int(result.get("epoch", 0))
        if epoch not in self.recorded or OUTCOME_KEY in result or not all(m in result for m in metrics):
            return TrialScheduler.CONTINUE
        at_rung = self.recorded[epoch]
        at_rung[trial.trial_id] = [sign * float(result[m]) for sign, m in zip(self.signs, metrics)]
        ids = list(at_rung)
        ranks = pareto_ranks([at_rung[i] for i in ids])
        order = sorted(range(len(ids)), key=lambda k: (ranks[k], at_rung[ids[k]][self.accuracy]))
        index = ids.index(trial.trial_id)
        on_front = ranks[index] == 1  # never stop a trial on the rung's own front
        within = order.index(index) < math.ceil(len(ids) / self.reduction_factor)
        return TrialScheduler.CONTINUE if on_front or within else TrialScheduler.STOP


class StudySearcher(OptunaSearch):
    """`OptunaSearch` on the pipeline's study, with the Optuna backend's bookkeeping.

    It shares the budget with other workers, skips duplicate proposals, stores what each trial
    measured, its constraints and its state in the study, and reports every event to MLflow.
    """

    def __init__(self, session: _RaySession, sampler: optuna.samplers.BaseSampler) -> None:
        backend, objectives = session.backend, session.objectives
        super().__init__(
            space=dict(session.evaluator.space.distributions),
            metric=objectives.metrics,
            mode=[direction[:3] for direction in objectives.directions],
            sampler=sampler,
            study_name=backend.study_name,
            storage=backend.storage,
        )
        self.session = session
        self.numbers: dict[str, int] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.epochs: dict[str, list[float]] = {}
        self.finished = False

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its configuration (for Tuner.restore); the session (MLflow, heartbeat) stays here
        return {**self.__dict__, "session": None}

    def save(self, checkpoint_path: str) -> None:
        # the study is the searcher's state; Tune's checkpoint only says where it lives
        state = {
            "study": self._study_name,
            "storage": self.session.backend.storage_url if self.session else None,
            "trials": self.numbers,
        }
        Path(checkpoint_path).write_text(json.dumps(state))

    def restore(self, checkpoint_path: str) -> None:
        self.numbers = dict(json.loads(Path(checkpoint_path).read_text()).get("trials", {}))

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        session = self.session
        if self.finished or session.failed_out() or session.budget_taken(None):
            self.finished = True
            return Searcher.FINISHED
        while True:
            with warnings.catch_warnings():  # our heartbeat thread beats for asked trials
                warnings.simplefilter("ignore", UserWarning)
                trial = self._ot_study.ask(fixed_distributions=self._space)
            # beat at once: a driver killed before a trial's first beat leaves it RUNNING for good
            session.heartbeat.add(trial._trial_id)
            if session.budget_taken(trial.number):
                self._skip(trial)
                self.finished = True
                return Searcher.FINISHED
            twin = session.twin(trial.params)
            if twin is None:
                break
            trial.set_user_attr(DUPLICATE_ATTR, twin)
            self._skip(trial)
        self._ot_trials[trial_id] = trial
        self.numbers[trial_id] = trial.number
        session.reporter.trial_started(trial.number, session.evaluator.space.logged_params(trial.params))
        return {**trial.params, NUMBER_KEY: trial.number}

    def _skip(self, trial: Trial) -> None:
        """End an asked trial that will not run (budget taken, or a duplicate) as PRUNED."""
        self._ot_study.tell(trial, state=TrialState.PRUNED)
        self.session.heartbeat.live.discard(trial._trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id not in self.numbers or OUTCOME_KEY in result:
            return
        self.last[trial_id] = result
        self.epochs.setdefault(trial_id, []).append(float(result["val_accuracy"]))
        report = EpochReport(
            int(result["epoch"]),
            float(result["train_loss"]),
            float(result["val_accuracy"]),
            float(result["val_loss"]),
            float(result["epoch_seconds"]),
        )
        self.session.reporter.epoch_finished(self.numbers[trial_id], report)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._completed_trials:
            return
        final = (result or {}).get(OUTCOME_KEY)
        if (
            not final
            and result
            and "val_accuracy" in result
            and int(result.get("epoch", 0)) > len(self.epochs.get(trial_id, []))
        ):
            self.on_trial_result(trial_id, result)  # the epoch the scheduler stopped the trial on
        self._finish(trial_id, trial, json.loads(final) if final else self._stopped_outcome(trial_id, error))

    def _stopped_outcome(self, trial_id: str, error: bool) -> dict[str, Any]:
        """A trial without a final report: stopped by ASHA after an epoch, or its worker died."""
        last = self.last.get(trial_id)
        if error or last is None or not all(key in last for key in COST_KEYS):
            reason = (
                "the trial's Ray worker failed (see the Ray logs)" if error else "the trial ended without reporting"
            )
            return {
                "state": "failed",
                "metrics": {},
                "epochs": self.epochs.get(trial_id, []),
                "kept": {},
                "error": reason,
            }
        metrics = {key: float(last[key]) for key in (*COST_KEYS, "val_accuracy", "val_loss")}
        metrics["epochs_run"] = float(len(self.epochs[trial_id]))
        metrics["stopped_early"] = 1.0
        kept = {key.removeprefix(KEPT_PREFIX): int(value) for key, value in last.items() if key.startswith(KEPT_PREFIX)}
        return {"state": "complete", "metrics": metrics, "epochs": self.epochs[trial_id], "kept": kept, "error": None}

    def _finish(self, trial_id: str, trial: Trial, outcome: dict[str, Any]) -> None:
        """Store a trial's outcome (and constraints) in the study, end it, and report it."""
        session = self.session
        self._completed_trials.add(trial_id)
        trial.set_user_attr(RESULT_ATTR, {k: outcome[k] for k in ("metrics", "epochs", "kept", "error")})
        if outcome["state"] == "complete":
            evaluator = session.evaluator
            for key, value in constraint_values(evaluator.constraints, outcome["metrics"], evaluator.reference).items():
                trial.set_constraint(key, value)
            frozen = self._ot_study.tell(trial, session.objectives.values(outcome["metrics"]))
        else:
            frozen = self._ot_study.tell(trial, state=TrialState.FAIL)
        session.heartbeat.live.discard(trial._trial_id)
        session.reporter.trial_finished(to_record(frozen, session.evaluator.space.fixed))

    def release(self) -> None:
        """Fail the study trials this searcher started that never finished (Ctrl-C, a crash)."""
        interrupted = {"state": "failed", "metrics": {}, "epochs": [], "kept": {}, "error": "interrupted"}
        for trial_id, trial in list(self._ot_trials.items()):
            if trial_id not in self._completed_trials:
                self._finish(trial_id, trial, interrupted)
