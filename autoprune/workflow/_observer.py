"""Who watches a pipeline run: an `Observer` gets its phases, the epochs of its long trainings and
every trial event (the CLI's progress display implements it; `QuietObserver` only logs)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..engine import EpochReport
from ..search import DenseReference, NullReporter, Objectives, TrialRecord, TrialReporter

__all__ = ["Observer", "QuietObserver", "Tee"]

log = logging.getLogger("autoprune")


class Observer(TrialReporter, Protocol):
    """Progress hooks for a person watching (the CLI's progress bar)."""

    def phase(self, text: str) -> None:
        """A new phase begins (loading data, preparing the dense model, finalizing trial 3, ...)."""

    def search_started(
        self, total: int, earlier: Sequence[TrialRecord], objectives: Objectives, reference: DenseReference
    ) -> None:
        """The search begins, ``total`` trials in all, ``earlier`` of them from earlier sessions."""


class QuietObserver(NullReporter):
    """An observer that only logs the phases (for library use without a display)."""

    def phase(self, text: str) -> None:
        log.info(text)

    def search_started(
        self, total: int, earlier: Sequence[TrialRecord], objectives: Objectives, reference: DenseReference
    ) -> None:
        pass


class Tee:
    """Sends every trial event to several reporters (MLflow, then the progress display)."""

    def __init__(self, *reporters: TrialReporter) -> None:
        self.reporters = reporters

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        for reporter in self.reporters:
            reporter.trial_started(number, params)

    def epoch_finished(self, number: int, report: EpochReport) -> None:
        for reporter in self.reporters:
            reporter.epoch_finished(number, report)

    def trial_finished(self, record: TrialRecord) -> None:
        for reporter in self.reporters:
            reporter.trial_finished(record)

    def training_epoch(self, what: str, report: EpochReport) -> None:
        for reporter in self.reporters:
            reporter.training_epoch(what, report)

    def candidate_scored(self, record: TrialRecord, done: int, total: int) -> None:
        for reporter in self.reporters:
            reporter.candidate_scored(record, done, total)

    def candidates_done(self, records: Sequence[TrialRecord], front: Sequence[int]) -> None:
        for reporter in self.reporters:
            reporter.candidates_done(records, front)
