"""One pipeline run, end to end (used by ``autoprune run`` and by ``retrain``).

Order matters for the promise "bad input writes nothing": data, model, groups, search space,
constraints and the stores' locations are checked first; then the dense model is trained (or loaded;
a resumed search first checks whether its study is already complete); only then are the stores
connected and the study and the MLflow parent run created. After the search, the last
worker to finish (under the study's lock) concludes: tags the front, finalizes and registers it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from torch import nn

from .. import data, engine, models
from ..config import LoadedPipeline, PipelineConfig
from ..search import (
    Budget,
    CandidateEvaluator,
    Objectives,
    SearchOutcome,
    SearchSpace,
    SearchStrategy,
    Study,
    TrialRecord,
    TrialState,
    join_ray,
    leave_ray,
)
from ._conclude import Conclusion, SearchState, conclude
from ._dense import DenseModel, build_dense, checkpoint_path, dense_cache_key, prepare_dense
from ._latency import latency_table
from ._layout import fit_layout
from ._locations import cache_dir, check_stores, storage_url
from ._observer import Observer, QuietObserver, Tee
from ._open import CONCLUDED_ATTR, finished_search, open_search
from ._placement import pipeline_device
from ._result import PipelineResult
from ._space import build_space
from ._strategies import finalize_settings, make_strategy, make_study, search_space

if TYPE_CHECKING:
    from ..tracking import MlflowReporter, Tracker

__all__ = ["run_loaded"]

log = logging.getLogger("autoprune")


@dataclass
class _Checked:
    """Everything known valid before a store is touched."""

    splits: data.Splits
    model: nn.Module
    space: SearchSpace
    objectives: Objectives


def _check(loaded: LoadedPipeline, observer: Observer) -> _Checked:
    config = loaded.config
    device = pipeline_device(config)  # a device this machine lacks is bad input: said before anything loads
    observer.phase("loading data")
    splits = data.load(config.data, seed=config.seed, base_dir=loaded.base_dir, cache=cache_dir(config))
    observer.phase(f"{splits.summary()}; building the model")
    model = build_dense(config, splits, base_dir=loaded.base_dir)
    splits, refused = fit_layout(model, config, splits)
    if refused is not None:
        log.info("the model cannot take channels-last images (%s): it runs in the default layout, more slowly", refused)
    checkpoint = checkpoint_path(config, loaded.base_dir)
    if checkpoint is not None:
        models.load_checkpoint(model, checkpoint)  # a bad checkpoint is bad input: say so before any store
    model.to(device)  # the space's fitting and the search use this same module (moved in place)
    splits = splits.on(device)
    if device.type != "cpu":
        log.info("models train, are evaluated and timed on %s (precision %s)", device, config.precision)
    groups = engine.discover(model, splits.input_shape)
    space = search_space(config, build_space(config, model, groups, splits))
    return _Checked(splits, model, space, Objectives(list(config.objectives)))


def _conclude_if_last(
    state: SearchState, study: Study, tracker: Tracker, parent: str
) -> tuple[list[TrialRecord], Conclusion | None]:
    """Conclude the search unless another worker still runs trials (the last one out concludes).

    Trials of a killed worker are RUNNING until their heartbeat is stale: wait that long for them.
    """
    with study.lock(":conclude"):
        study.settle(4 * study.heartbeat_s)
        records = study.records()
        if any(r.state == TrialState.RUNNING for r in records):
            log.info("other workers still run trials; the last one to finish concludes the search")
            return records, None
        conclusion = conclude(state, tracker, parent, records, study.best_trial_numbers())
        study.set_attr(CONCLUDED_ATTR, sum(r.state.finished for r in records))
        return records, conclusion


def _prepare_dense(loaded: LoadedPipeline, checked: _Checked, observer: Observer) -> DenseModel:
    """The dense model with its weights (checkpoint, cache or training) and its reference figures."""
    observer.phase("preparing the dense model")
    config = loaded.config
    dense = prepare_dense(
        config,
        checked.splits,
        checked.model,
        base_dir=loaded.base_dir,
        cache_dir=cache_dir(config),
        latency=config.latency,
        on_epoch=partial(observer.training_epoch, "dense model"),
    )
    observer.phase(dense.describe())
    return dense


def _budget(config: PipelineConfig) -> Budget:
    search = config.search
    return Budget(search.trials, search.timeout_s, search.max_failed_trials or search.trials)


def run_loaded(
    loaded: LoadedPipeline,
    *,
    resume: bool = False,
    observer: Observer | None = None,
    warm_start: Sequence[Mapping[str, Any]] = (),
    hold_champion: bool = False,
) -> PipelineResult:
    """Run (or with ``resume``, continue) the search a loaded pipeline describes (see `workflow.run`)."""
    config, observer = loaded.config, observer or QuietObserver()
    clock = time.perf_counter()
    checked = _check(loaded, observer)
    joined = False
    if config.search.backend == "ray" and config.search.strategy == "oneshot":
        log.info("search.strategy oneshot scores its candidates in this process: the Ray cluster is not joined")
    elif config.search.backend == "ray":
        observer.phase("joining the Ray cluster")
        joined = join_ray(config.ray.address)  # an unreachable cluster is reported before anything is written
    try:
        check_stores(config)  # before either store is created
        # a new search trains the dense model before any store is created (a diverging training writes
        # nothing); a resumed one first looks whether its study is complete (then nothing is trained)
        dense = None if resume else _prepare_dense(loaded, checked, observer)
        study = make_study(config, checked.objectives, checked.space)
        with study.lock(":open"):  # workers starting together must not both create the stores' tables
            study.connect()
            from ..tracking import Tracker

            tracker = Tracker(config.tracking.uri, None).open()
        run = _Run(loaded, checked, study, make_strategy(config), tracker, observer)
        return run.go(clock, dense, resume=resume, warm_start=warm_start, hold_champion=hold_champion)
    finally:
        if joined:
            leave_ray()


class _Run:
    """`run_loaded` once the input is known valid and the stores are reached: the dense model, the
    study and its parent run, the search, the conclusion."""

    def __init__(
        self,
        loaded: LoadedPipeline,
        checked: _Checked,
        study: Study,
        strategy: SearchStrategy,
        tracker: Tracker,
        observer: Observer,
    ) -> None:
        self.loaded, self.config, self.checked = loaded, loaded.config, checked
        self.study, self.strategy, self.tracker, self.observer = study, strategy, tracker, observer
        self.seconds: dict[str, float] = {}

    def go(
        self,
        clock: float,
        dense: DenseModel | None,
        *,
        resume: bool,
        warm_start: Sequence[Mapping[str, Any]],
        hold_champion: bool,
    ) -> PipelineResult:
        from ..tracking import MlflowReporter

        config, checked, observer = self.config, self.checked, self.observer
        if resume and (stored := self._already_complete()) is not None:
            return stored
        dense = dense or _prepare_dense(self.loaded, checked, observer)
        self.seconds["dense"] = time.perf_counter() - clock
        parent = open_search(
            self.study,
            self.strategy,
            self.tracker,
            self.loaded,
            checked.space,
            dense,
            resume=resume,
            warm_start=warm_start,
        )
        objectives = checked.objectives
        reporter = MlflowReporter(
            self.tracker,
            parent,
            logged_params=checked.space.logged_params,
            cost_metrics=objectives.cost_metrics,
            dense_costs={**dense.reference.as_dict(), "latency_ratio": 1.0},
        )
        with reporter:
            evaluator = self.strategy.prepare(self._evaluator(dense), Tee(reporter, observer))
            state = SearchState(
                config=config,
                splits=checked.splits,
                dense_model=evaluator.dense,
                reference=dense.reference,
                space=evaluator.space,
                objectives=objectives,
                measure=engine.MeasureConfig(latency=config.latency),  # members' latency measured whole
                phase=observer.phase,
                hold_champion=hold_champion,
                training_epoch=observer.training_epoch,
                teacher=evaluator.teacher,
                finalize=finalize_settings(config),
                table=evaluator.measure.table,
            )
            records, conclusion, outcome = self._search_and_conclude(evaluator, state, reporter, parent)
        return self._result(parent, dense, records, conclusion, outcome)

    def _already_complete(self) -> PipelineResult | None:
        """The stored result of the latest study when its budget is spent and it was concluded: a
        resume then measures, trains and writes nothing. None while work is left."""
        config, checked = self.config, self.checked
        key = dense_cache_key(config, checked.splits, checked.model)
        view = finished_search(self.study, self.strategy, self.tracker, config, checked.space, key, _budget(config))
        if view is None or view.dense is None:
            return None
        members = view.members
        log.warning(
            "study %s is complete (%d trials) and concluded: nothing to do; raise the budget to search further",
            self.study.name,
            self.study.count(TrialState.COMPLETE),
        )
        return PipelineResult(
            **self._where(view.registered_model),
            parent_run_id=view.parent_run_id,
            dense=view.dense,
            records=self.study.records(),
            members=members,
            front=[m.trial for m in members],
            aliases={alias: m.trial for m in members for alias in m.aliases},
            hypervolume=view.hypervolume,
            already_complete=True,
        )

    def _evaluator(self, dense: DenseModel) -> CandidateEvaluator:
        config, checked = self.config, self.checked
        table = None
        if config.latency.mode == "table":
            self.observer.phase("fitting the latency table")
            table = latency_table(config, dense.model, checked.splits.input_shape)
        return CandidateEvaluator(
            dense.model,
            checked.splits,
            checked.space,
            measure=engine.MeasureConfig(latency=config.latency, table=table),
            reference=dense.reference,
            constraints=config.constraints.active(),
            skip_over_limit=config.search.skip_over_limit,
        )

    def _search_and_conclude(
        self, evaluator: CandidateEvaluator, state: SearchState, reporter: MlflowReporter, parent: str
    ) -> tuple[list[TrialRecord], Conclusion | None, SearchOutcome]:
        """The search, then the conclusion; the parent run ends FINISHED (KILLED on Ctrl-C, FAILED on
        an error; still RUNNING while other workers search)."""
        config, study = self.config, self.study
        status: str | None = "FAILED"
        try:
            clock = time.perf_counter()
            budget = _budget(config)
            planned = self.strategy.planned_trials(budget)
            self.observer.search_started(planned, study.records(), self.checked.objectives, evaluator.reference)
            outcome = self.strategy.run(study, evaluator, Tee(reporter, self.observer), budget)
            reporter.reconcile(study.records())  # waits for the background logging, closes runs of killed trials
            self.seconds["search"], clock = time.perf_counter() - clock, time.perf_counter()
            records, conclusion = _conclude_if_last(state, study, self.tracker, parent)
            self.seconds["finalize"] = time.perf_counter() - clock
            status = "FINISHED" if conclusion else None  # still RUNNING while other workers search
            return records, conclusion, outcome
        except KeyboardInterrupt:
            status = "KILLED"
            with contextlib.suppress(Exception):  # the resume hint matters more than a logging error now
                reporter.reconcile(study.records())  # the interrupted trial ends FAILED, not RUNNING
            raise
        finally:
            if status:
                self.tracker.finish(parent, status)

    def _where(self, registered_model: str | None) -> dict[str, Any]:
        """What every result says of where the search lives: its config, study, stores and addresses."""
        config, tracker = self.config, self.tracker
        return {
            "config": config,
            "study": self.study.name,
            "storage": storage_url(config),
            "experiment_id": tracker.experiment_id,
            "experiment_url": tracker.experiment_url,
            "front_url": tracker.front_url,
            "model_url": tracker.model_url(registered_model) if registered_model else None,
            "splits": self.checked.splits,
        }

    def _result(
        self,
        parent: str,
        dense: DenseModel,
        records: list[TrialRecord],
        conclusion: Conclusion | None,
        outcome: SearchOutcome,
    ) -> PipelineResult:
        config = self.config
        return PipelineResult(
            **self._where(config.registered_model if config.tracking.register_models else None),
            parent_run_id=parent,
            dense=dense.reference,
            records=records,
            members=conclusion.members if conclusion else [],
            front=conclusion.front if conclusion else [],
            copies=conclusion.copies if conclusion else {},
            aliases=conclusion.aliases if conclusion else {},
            candidate=conclusion.candidate if conclusion else None,
            hypervolume=conclusion.hypervolume if conclusion else 0.0,
            stop_reason=outcome.stop_reason,
            failed_out=outcome.failed_out,
            concluded=conclusion is not None,
            seconds={**self.seconds, **outcome.seconds},
        )
