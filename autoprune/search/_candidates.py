"""Scoring one-shot candidates, and the study that proposes them.

A candidate is scored as a real model: the subnet physically extracted from the supernet by the
engine (the same pruning call as every trial), its BatchNorm statistics recalibrated on a few
training batches, then its validation accuracy, params, MACs and bytes, and its latency measured side
by side with the dense model's. Candidates keeping the same channels are one architecture, scored
once. The proposals come from Optuna's multi-objective samplers in a study of their own, kept in an
append-only journal file beside the pipeline's store (`CandidateJournal`): cheap to write a thousand
times, and a killed run goes on from the candidates it scored.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.samplers import BaseSampler
from optuna.trial import TrialState as OptunaState

from .._vocab import Metric, TrialState
from ..data import TensorSplit
from ..engine import CandidateResult, NestedChannels, evaluate, measure_into, recalibrate_batchnorm
from ._adapter import set_constraints
from ._evaluator import CandidateEvaluator
from ._journal import CandidateJournal
from ._records import Objectives, TrialRecord
from ._study import OUTCOME_ATTR, to_record

__all__ = ["CandidateScorer", "CandidateStudy", "scored"]

log = logging.getLogger("autoprune")


class CandidateScorer:
    """Candidate parameters in, a `TrialRecord` out, by BatchNorm-recalibrated accuracy (see the module
    docstring). ``evaluator`` holds the supernet (as its dense model), the space with the nested order
    and what to measure; ``val`` is the split candidates are scored on."""

    def __init__(
        self,
        evaluator: CandidateEvaluator,
        nested: NestedChannels,
        calibration: Sequence[torch.Tensor],
        val: TensorSplit,
        dense: torch.nn.Module,
    ) -> None:
        self.evaluator = evaluator
        self.nested = nested
        self.calibration = list(calibration)
        self.val = val
        self.dense = dense
        self._scored: dict[tuple[tuple[str, int], ...], CandidateResult] = {}
        self.seconds = {"score": 0.0}

    def __call__(self, number: int, params: Mapping[str, Any]) -> TrialRecord:
        start = time.perf_counter()
        try:
            plan = self.evaluator.space.candidate(params).plan
            kept = self.nested.kept(plan)
            key = tuple(sorted(kept.items()))
            if key not in self._scored:
                self._scored[key] = self._score(plan, kept)
            result = self._scored[key]
        except Exception as exc:  # a candidate that cannot be built or run is recorded as failed
            log.info("candidate %d failed: %s: %s", number, type(exc).__name__, exc)
            log.debug("candidate %d traceback:\n%s", number, "".join(traceback.format_exception(exc)))
            return TrialRecord.failed(number, params, f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - start
        self.seconds["score"] += seconds
        record = self.evaluator.record(number, params, result, seconds=seconds)
        return record if record.state != TrialState.COMPLETE else _calibrated(record)

    def _score(self, plan: Any, kept: Mapping[str, int]) -> CandidateResult:
        clock = time.perf_counter()
        subnet = self.nested.extract(self.evaluator.dense, plan)
        seconds = {"prune": time.perf_counter() - clock}
        clock = time.perf_counter()
        recalibrate_batchnorm(subnet, self.calibration)
        judged = evaluate(subnet, self.val)
        seconds["evaluate"] = time.perf_counter() - clock
        clock = time.perf_counter()
        result = CandidateResult(kept=dict(kept), val_accuracy=judged.accuracy, val_loss=judged.loss)
        measure_into(result, self.dense, subnet, self.evaluator.splits, self.evaluator.measure)
        seconds["measure"] = time.perf_counter() - clock
        result.seconds = seconds
        return result


def _calibrated(record: TrialRecord) -> TrialRecord:
    metrics = {**record.metrics, Metric.CALIBRATED: 1.0}
    return TrialRecord(
        record.number, record.state, record.params, metrics=metrics, epochs=record.epochs, kept=record.kept,
        constraints=record.constraints, error=record.error, seconds=record.seconds,
    )  # fmt: skip


def scored(path: Path, name: str) -> int:
    """How many candidates the journal ``path`` holds finished for study ``name`` (0 when it holds none);
    reads only, unlike `CandidateStudy.open`."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not path.is_file():
        return 0
    try:
        study = optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))
    except KeyError:
        return 0
    return len(study.get_trials(deepcopy=False, states=(OptunaState.COMPLETE, OptunaState.FAIL)))


class CandidateStudy:
    """The one-shot search's own study of candidates, in a journal file (see the module docstring).

    Args:
        path: The journal file (created with its folder when missing).
        name: The study's name (the pipeline study's, so each search has its own candidates).
        objectives: What the candidates are judged by (the pipeline's objectives).
        sampler: Proposes the candidates (the pipeline's, seeded past the candidates already scored).
    """

    def __init__(self, path: Path, name: str, objectives: Objectives, sampler: Callable[[int], BaseSampler]) -> None:
        self.path = path
        self.name = name
        self.objectives = objectives
        self.make_sampler = sampler
        self._study: optuna.Study | None = None
        self._journal: CandidateJournal | None = None

    def __enter__(self) -> CandidateStudy:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Make the journal durable and close it."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def open(self) -> CandidateStudy:
        """Open (or create) the study; candidates a killed run left unfinished are ended as failed."""
        from optuna.storages import JournalStorage

        self._journal = CandidateJournal(self.path).open()
        storage = JournalStorage(self._journal)
        study = optuna.create_study(
            storage=storage, study_name=self.name, directions=self.objectives.directions, load_if_exists=True
        )
        study_id = storage.get_study_id_from_name(self.name)
        for trial in study.get_trials(deepcopy=False, states=(OptunaState.RUNNING,)):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_state_values(trial_id, OptunaState.FAIL)
        study.sampler = self.make_sampler(len(study.get_trials(deepcopy=False)))
        self._study = study
        return self

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            raise RuntimeError("call CandidateStudy.open() first")
        return self._study

    def records(self) -> list[TrialRecord]:
        return [to_record(t) for t in self.study.get_trials(deepcopy=False)]

    def done(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(OptunaState.COMPLETE, OptunaState.FAIL)))

    def score_one(
        self, distributions: Mapping[str, Any], score: Callable[[int, Mapping[str, Any]], TrialRecord]
    ) -> TrialRecord:
        """Ask for a candidate, score it, and tell the study how it did."""
        trial = self.study.ask(fixed_distributions=dict(distributions))
        record = score(trial.number, trial.params)
        trial.set_user_attr(OUTCOME_ATTR, record.outcome())
        if record.state == TrialState.COMPLETE:
            set_constraints(trial, record.constraints)
            self.study.tell(trial, self.objectives.values(record.metrics))
        else:
            self.study.tell(trial, state=OptunaState.FAIL)
        return record
