"""The Ray Tune pieces of the Ray backend: a searcher that asks the pipeline's study for proposals and
tells it the outcomes, the driver's heartbeat for the trials it runs, and Pareto-ranked ASHA.

This module imports Ray at the top, so only `RayBackend` imports it, when a search starts. It uses
Ray's public searcher interface (``ray.tune.search.Searcher``) and the study's public methods.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

from optuna.trial import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from ..._vocab import Metric, TrialState
from ...engine import EpochReport
from .._pareto import pareto_ranks
from .._records import KEPT_PREFIX, Objectives, TrialRecord, constraint_values
from .._study import Study
from ._budget import BudgetRules
from ._ray_worker import COST_KEYS, NUMBER_KEY, OUTCOME_KEY

__all__ = ["Heartbeat", "ParetoASHA", "StudySearcher"]

log = logging.getLogger("autoprune")


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
        self.accuracy = metrics.index(Metric.VAL_ACCURACY) if Metric.VAL_ACCURACY in metrics else 0
        self.recorded: dict[int, dict[str, list[float]]] = {}
        rung = grace_period
        while rung < max_t:
            self.recorded[rung] = {}
            rung = math.ceil(rung * reduction_factor)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        metrics = self.objectives.metrics
        epoch = int(result.get("epoch", 0))
        if epoch not in self.recorded or OUTCOME_KEY in result or not all(m in result for m in metrics):
            return str(TrialScheduler.CONTINUE)
        at_rung = self.recorded[epoch]
        at_rung[trial.trial_id] = [sign * float(result[m]) for sign, m in zip(self.signs, metrics)]
        ids = list(at_rung)
        ranks = pareto_ranks([at_rung[i] for i in ids])
        order = sorted(range(len(ids)), key=lambda k: (ranks[k], at_rung[ids[k]][self.accuracy]))
        index = ids.index(trial.trial_id)
        on_front = ranks[index] == 1  # never stop a trial on the rung's own front
        within = order.index(index) < math.ceil(len(ids) / self.reduction_factor)
        return str(TrialScheduler.CONTINUE if on_front or within else TrialScheduler.STOP)


class Heartbeat:
    """Beats for the study trials this driver runs, so a killed driver's trials end failed (as with
    the Optuna backend). `start` starts its thread; `close` stops it (or use it as a context manager)."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.live: dict[int, int] = {}  # trial number -> storage id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._beat, name="autoprune-heartbeat", daemon=True)
        self._thread.start()
        return self

    def add(self, trial: Trial) -> None:
        """Beat for ``trial`` now and from now on."""
        self.live[trial.number] = self.study.trial_id(trial.number)
        self.study.storage.record_heartbeat(self.live[trial.number])

    def discard(self, trial: Trial) -> None:
        self.live.pop(trial.number, None)

    def _beat(self) -> None:
        while not self._stop.wait(self.study.heartbeat_s):
            for trial_id in list(self.live.values()):
                try:
                    self.study.storage.record_heartbeat(trial_id)
                except Exception as exc:  # a missed beat is retried; a long outage fails the trial later
                    log.debug("heartbeat of trial %d failed: %s", trial_id, exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class StudySearcher(Searcher):
    """Tune's searcher on the pipeline's study, with the budget rules of every trial strategy.

    It asks the study for each proposal (its sampler, enqueued sets first), shares the budget with
    other workers, skips duplicate proposals, tells the study what each trial measured, and reports
    every event to the tracking layer.
    """

    def __init__(self, rules: BudgetRules, heartbeat: Heartbeat) -> None:
        super().__init__()
        self.rules = rules
        self.heartbeat = heartbeat
        self.asked: dict[str, Trial] = {}
        self.done: set[str] = set()
        self.last: dict[str, dict[str, Any]] = {}
        self.epochs: dict[str, list[float]] = {}
        self.finished = False

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its configuration (for Tuner.restore); the study, MLflow and the heartbeat stay here
        return {"asked": {}, "done": set(), "last": {}, "epochs": {}, "finished": self.finished}

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        return True  # the study holds the space and the objectives

    def save(self, checkpoint_path: str) -> None:
        # the study is the searcher's state; Tune's checkpoint only says which trials were asked
        numbers = {trial_id: trial.number for trial_id, trial in self.asked.items()}
        Path(checkpoint_path).write_text(json.dumps({"trials": numbers}))

    def restore(self, checkpoint_path: str) -> None:
        pass  # the study has every trial; nothing else is needed to go on

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # Ray's FINISHED is a str
        rules, study = self.rules, self.rules.study
        if self.finished or rules.too_many_failures() or rules.budget_taken(None):
            self.finished = True
            return str(Searcher.FINISHED)
        space = rules.evaluator.space
        while True:
            trial = study.ask(space.distributions)
            self.heartbeat.add(trial)  # at once: a driver killed before the first beat leaves it RUNNING
            if rules.budget_taken(trial.number):
                self._skip(trial)
                self.finished = True
                return str(Searcher.FINISHED)
            twin = rules.twin(trial.params)
            if twin is None:
                break
            self._skip(trial, duplicate_of=twin)
        self.asked[trial_id] = trial
        rules.reporter.trial_started(trial.number, space.logged_params(trial.params))
        return {**trial.params, NUMBER_KEY: trial.number}

    def _skip(self, trial: Trial, duplicate_of: int | None = None) -> None:
        self.rules.study.skip(trial, duplicate_of=duplicate_of)
        self.heartbeat.discard(trial)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id not in self.asked or OUTCOME_KEY in result:
            return
        self.last[trial_id] = result
        self.epochs.setdefault(trial_id, []).append(float(result[Metric.VAL_ACCURACY]))
        report = EpochReport(
            int(result["epoch"]),
            float(result["train_loss"]),
            float(result[Metric.VAL_ACCURACY]),
            float(result[Metric.VAL_LOSS]),
            float(result["epoch_seconds"]),
        )
        self.rules.reporter.epoch_finished(self.asked[trial_id].number, report)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        trial = self.asked.get(trial_id)
        if trial is None or trial_id in self.done:
            return
        final = (result or {}).get(OUTCOME_KEY)
        stopped_at = int((result or {}).get("epoch", 0))
        if not final and result and Metric.VAL_ACCURACY in result and stopped_at > len(self.epochs.get(trial_id, [])):
            self.on_trial_result(trial_id, result)  # the epoch the scheduler stopped the trial on
        record = self._reported(trial, json.loads(final)) if final else self._stopped(trial_id, trial, error)
        self._finish(trial_id, trial, record)

    def _reported(self, trial: Trial, payload: dict[str, Any]) -> TrialRecord:
        """The record a worker's final report carries."""
        state = TrialState(payload["state"])
        return TrialRecord.from_outcome(trial.number, state, trial.params, payload, constraints=payload["constraints"])

    def _stopped(self, trial_id: str, trial: Trial, error: bool) -> TrialRecord:
        """A trial without a final report: stopped by ASHA after an epoch, or its worker died."""
        last = self.last.get(trial_id)
        if error or last is None or not all(key in last for key in COST_KEYS):
            reason = (
                "the trial's Ray worker failed (see the Ray logs)" if error else "the trial ended without reporting"
            )
            return TrialRecord.failed(trial.number, trial.params, reason)
        keys = (*COST_KEYS, Metric.VAL_ACCURACY, Metric.VAL_LOSS)
        metrics = {str(key): float(last[key]) for key in keys}
        metrics[Metric.EPOCHS_RUN] = float(len(self.epochs[trial_id]))
        metrics[Metric.STOPPED_EARLY] = 1.0
        kept = {key.removeprefix(KEPT_PREFIX): int(value) for key, value in last.items() if key.startswith(KEPT_PREFIX)}
        evaluator = self.rules.evaluator
        return TrialRecord(
            trial.number,
            TrialState.COMPLETE,
            dict(trial.params),
            metrics=metrics,
            epochs=self.epochs[trial_id],
            kept=kept,
            constraints=constraint_values(evaluator.constraints, metrics, evaluator.reference),
        )

    def _finish(self, trial_id: str, trial: Trial, record: TrialRecord) -> None:
        """Tell the study a trial's outcome and report it."""
        self.done.add(trial_id)
        stored = self.rules.study.tell(trial, record)
        self.heartbeat.discard(trial)
        self.rules.reporter.trial_finished(stored)

    def release(self) -> None:
        """Fail the study trials this searcher started that never finished (Ctrl-C, a crash)."""
        for trial_id, trial in list(self.asked.items()):
            if trial_id not in self.done:
                self._finish(trial_id, trial, TrialRecord.failed(trial.number, trial.params, "interrupted"))
