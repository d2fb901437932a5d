"""The ``oneshot`` strategy: a weight-sharing supernet fine-tuned once, thousands of candidates scored
in-process by BatchNorm-recalibrated accuracy, and only the front's best turned into trials.

1. `prepare` nests the dense model's channels by the space's importance criterion and fine-tunes the
   supernet with the sandwich rule (`_supernet`); the evaluator it returns cuts candidates from the
   supernet and distils their fine-tunes from the dense model.
2. `run` lets the pipeline's sampler propose ``oneshot.candidates`` candidates in a study of their own
   and scores each as a real, extracted model (`_candidates`); then the front of the candidates
   (feasible, non-dominated, one latency per architecture as for trials) is thinned to ``members``
   by hypervolume, and those candidates become the study's trials: child runs in MLflow, which the
   conclude step finalizes (a full fine-tune from the supernet's weights, the test split, exports,
   the registry) exactly as it does the ``trials`` strategy's front.

Ray: the candidates are scored in the driver. A candidate takes a fraction of a second against a
supernet held in memory; shipping the supernet and the data to workers costs more than it saves.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from optuna.samplers import BaseSampler

from .._vocab import TrialState
from ..config import OneShotConfig
from ..data import TensorSplit
from ..engine import evaluate, recalibrate_batchnorm
from ._candidates import CandidateScorer, CandidateStudy, scored
from ._contract import Budget, SearchOutcome, SearchStrategy
from ._evaluator import CandidateEvaluator, TrialReporter
from ._front import choose_members, front_losses, front_of
from ._records import TrialRecord
from ._study import Study, make_sampler
from ._supernet import Supernet, calibration_batches, prepare_supernet

__all__ = ["CANDIDATE_ATTR", "OneShotStrategy"]

log = logging.getLogger("autoprune")

CANDIDATE_ATTR = "autoprune.candidate"  # a trial's number among the one-shot candidates


class OneShotStrategy(SearchStrategy):
    """The one-shot strategy (see the module docstring).

    Args:
        settings: The pipeline's ``oneshot:`` block.
        work_dir: Where the candidates' journal files live (beside the pipeline's store).
        cache_dir: Where trained supernets are cached.
        sampler: The pipeline's sampler name; ``seed`` seeds it and the supernet's training.
        members: How many front candidates become trials (and are finalized).
    """

    name = "oneshot"

    def __init__(
        self, settings: OneShotConfig, *, work_dir: Path, cache_dir: Path, sampler: str, seed: int, members: int
    ) -> None:
        self.settings = settings
        self.work_dir = work_dir
        self.cache_dir = cache_dir
        self.sampler = sampler
        self.seed = seed
        self.members = members
        self.supernet: Supernet | None = None
        self.calibration: list[torch.Tensor] = []  # the training batches every candidate is recalibrated on
        self.seconds: dict[str, float] = {}

    def describe(self) -> str:
        settings = self.settings
        tuned = f"fine-tuned {settings.supernet_epochs} epochs" if settings.supernet_epochs else "not fine-tuned"
        return (
            f"oneshot: a supernet {tuned} (sandwich rule), {settings.candidates} candidates scored by BatchNorm-"
            f"recalibrated accuracy ({self.sampler}), the front's {self.members} best finalized"
        )

    def planned_trials(self, budget: Budget) -> int:
        return self.members

    def finished(self, study: Study, budget: Budget) -> bool:
        """Whether every candidate was scored and the front's best became the study's trials."""
        done = scored(self._journal(study), study.name) >= self.settings.candidates
        return done and any(CANDIDATE_ATTR in t.user_attrs for t in study.trials(TrialState.COMPLETE))

    def _journal(self, study: Study) -> Path:
        return self.work_dir / f"{study.name.replace('#', '-')}.journal"

    def prepare(self, evaluator: CandidateEvaluator, reporter: TrialReporter) -> CandidateEvaluator:
        """Build (or load) the supernet; the evaluator that cuts candidates from it."""
        splits = evaluator.splits
        self.calibration = calibration_batches(splits, self.settings.calibration_batches, seed=self.seed)
        supernet = prepare_supernet(
            evaluator.dense,
            splits,
            evaluator.space,
            self.settings,
            cache_dir=self.cache_dir,
            seed=self.seed,
            calibration=self.calibration,
            on_epoch=lambda report: reporter.training_epoch("supernet", report),
        )
        self.supernet = supernet
        self.seconds["supernet"] = supernet.seconds
        log.info(supernet.describe())
        return CandidateEvaluator(
            supernet.model,
            splits,
            evaluator.space.with_order(supernet.nested.order),
            measure=evaluator.measure,
            reference=evaluator.reference,
            constraints=evaluator.constraints,
            skip_over_limit=evaluator.skip_over_limit,
            teacher=evaluator.dense,
        )

    def run(
        self, study: Study, evaluator: CandidateEvaluator, reporter: TrialReporter, budget: Budget
    ) -> SearchOutcome:
        """Score candidates until ``oneshot.candidates`` are (or the time or failures run out), then
        make the front's best the study's trials."""
        if self.supernet is None:
            raise RuntimeError("call OneShotStrategy.prepare() first")

        journal = CandidateStudy(self._journal(study), study.name, study.objectives, self._sampler)
        with study.lock(":oneshot"), journal as candidates:  # one worker scores; the others find them done
            val = evaluator.splits.val
            if self.settings.score_samples is not None:
                val = val.subset(self.settings.score_samples, seed=self.seed)
            scoring = self._scoring(evaluator, self.calibration, val)
            dense = evaluator.teacher if evaluator.teacher is not None else evaluator.dense
            scorer = CandidateScorer(scoring, self.supernet.nested, self.calibration, val, dense)
            outcome = self._score(candidates, scorer, evaluator, reporter, budget)
            records = candidates.records()
            front, chosen = self._front(records, study, evaluator)
            reporter.candidates_done(records, front)
            self._add_trials(study, evaluator, reporter, [r for r in records if r.number in chosen])
        return dataclasses.replace(outcome, seconds=dict(self.seconds))

    def _scoring(
        self, evaluator: CandidateEvaluator, calibration: Sequence[torch.Tensor], val: TensorSplit
    ) -> CandidateEvaluator:
        """The evaluator candidates are recorded by: an accuracy drop is judged against the largest
        subnet's calibrated accuracy (both before any fine-tune), not the trained dense model's."""
        assert self.supernet is not None
        nested, largest = self.supernet.nested, evaluator.space.largest_plan()
        subnet = nested.extract(nested.model, largest)
        recalibrate_batchnorm(subnet, calibration)
        accuracy = evaluate(subnet, val).accuracy
        if "max_accuracy_drop" in evaluator.constraints:
            log.info("candidates' accuracy drop is judged against the largest subnet's calibrated %.4f", accuracy)
        scoring = copy.copy(evaluator)
        scoring.reference = dataclasses.replace(evaluator.reference, val_accuracy=accuracy)
        return scoring

    def _sampler(self, done: int) -> BaseSampler:
        """The pipeline's sampler, seeded past the candidates already scored (a resumed run goes on)."""
        size = self.settings.population_size
        return make_sampler(
            self.sampler, seed=self.seed + done, trials=self.settings.candidates, population_size=size, one_writer=True
        )

    def _score(
        self,
        candidates: CandidateStudy,
        scorer: CandidateScorer,
        evaluator: CandidateEvaluator,
        reporter: TrialReporter,
        budget: Budget,
    ) -> SearchOutcome:
        total, start = self.settings.candidates, time.monotonic()
        failures = sum(r.state == TrialState.FAILED for r in candidates.records())
        distributions = evaluator.space.distributions
        done = candidates.done()  # then counted here: one writer, and a query per candidate costs O(n)
        while done < total:
            if budget.timeout_s is not None and time.monotonic() - start >= budget.timeout_s:
                return SearchOutcome(f"the time budget of {budget.timeout_s:g} s ran out after {done} candidates")
            if budget.max_failed_trials is not None and failures >= budget.max_failed_trials:
                return SearchOutcome(f"{failures} candidates failed (search.max_failed_trials)", failed_out=True)
            record = candidates.score_one(distributions, scorer)
            failures += record.state == TrialState.FAILED
            done += 1
            reporter.candidate_scored(record, done, total)
        seconds, scoring = time.monotonic() - start, scorer.seconds["score"]
        self.seconds.update(candidates=seconds, scoring=scoring)
        if scoring > 0:
            overhead = 100 * (seconds - scoring) / scoring
            log.info("candidates scored in %.1f s, %.1f s of it scoring: %.0f%% overhead", seconds, scoring, overhead)
        return SearchOutcome()

    def _front(
        self, records: Sequence[TrialRecord], study: Study, evaluator: CandidateEvaluator
    ) -> tuple[list[int], set[int]]:
        """The candidates' front, and the members of it that become trials."""
        front, _ = front_of(records, study.objectives, evaluator.reference)
        losses = front_losses(records, study.objectives, evaluator.reference)
        distinct: dict[tuple[tuple[str, int], ...], int] = {}
        for number in front:  # one trial per architecture: the same channels score the same
            distinct.setdefault(tuple(sorted(next(r for r in records if r.number == number).kept.items())), number)
        chosen = choose_members(sorted(distinct.values()), losses, self.members)
        log.info("%d candidates, front of %d, %d become trials", len(records), len(front), len(chosen))
        return front, set(chosen)

    def _add_trials(
        self, study: Study, evaluator: CandidateEvaluator, reporter: TrialReporter, chosen: Sequence[TrialRecord]
    ) -> None:
        """Each chosen candidate as a finished trial of the study (once, also when a run is resumed)."""
        added = {t.user_attrs.get(CANDIDATE_ATTR) for t in study.optuna.get_trials(deepcopy=False)}
        distributions = evaluator.space.distributions
        for record in chosen:
            if record.number in added:
                continue
            stored = study.add(record, distributions, tag=(CANDIDATE_ATTR, record.number))
            reporter.trial_started(stored.number, evaluator.space.logged_params(stored.params))
            reporter.trial_finished(stored)
