"""One pipeline run, end to end (used by ``autoprune run`` and, later, ``retrain``).

data → dense model (trained once, cached) → search (every trial one engine call, one MLflow child
run) → front (our non-dominated set, cross-checked with Optuna's) → front members fine-tuned longer,
tested once, exported, logged → registry versions and aliases → parent-run summary.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import data, engine
from ._dense import DenseModel, prepare_dense
from ._finalize import choose_aliases, finalize_member, front_of
from .config import LoadedPipeline, PipelineConfig
from .search import (
    Budget,
    CandidateEvaluator,
    NullReporter,
    Objectives,
    OptunaBackend,
    SearchSpace,
    TrialRecord,
    TrialReporter,
    hypervolume,
)

__all__ = ["run", "PipelineResult", "Observer", "state_dir", "storage_url", "measure_config"]

log = logging.getLogger("autoprune")


class Observer(TrialReporter, Protocol):
    """Progress hooks for a person watching (the CLI's progress bar)."""

    def phase(self, text: str) -> None: ...

    def search_started(self, total: int, earlier: Sequence[TrialRecord]) -> None: ...


class _Quiet(NullReporter):
    def phase(self, text: str) -> None:
        log.info(text)

    def search_started(self, total: int, earlier: Sequence[TrialRecord]) -> None:
        pass


class _Tee:
    """Sends every trial event to several reporters (MLflow, then the progress display)."""

    def __init__(self, *reporters: TrialReporter) -> None:
        self.reporters = reporters

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        for reporter in self.reporters:
            reporter.trial_started(number, params)

    def epoch_finished(self, number: int, report: engine.EpochReport) -> None:
        for reporter in self.reporters:
            reporter.epoch_finished(number, report)

    def trial_finished(self, record: TrialRecord) -> None:
        for reporter in self.reporters:
            reporter.trial_finished(record)


@dataclass
class PipelineResult:
    """What a finished pipeline run leaves behind, and where to look at it."""

    config: PipelineConfig
    study: str
    storage: str
    experiment_id: str
    experiment_url: str
    model_url: str | None
    parent_run_id: str
    dense: Any
    records: list[TrialRecord]
    front: list[dict[str, Any]]
    aliases: dict[str, int] = field(default_factory=dict)
    hypervolume: float = 0.0
    stop_reason: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def state_dir(config: PipelineConfig) -> Path:
    """Where local state lives: beside a sqlite tracking store, else ``./mlflow``."""
    from .tracking import sqlite_path

    database = sqlite_path(config.tracking.uri)
    return database.parent if database is not None else Path("mlflow")


def storage_url(config: PipelineConfig) -> str:
    """The Optuna storage: the pipeline's, else a sqlite file beside the tracking store."""
    return config.search.storage or f"sqlite:///{state_dir(config) / 'optuna.db'}"


def measure_config(config: PipelineConfig) -> engine.MeasureConfig:
    return engine.MeasureConfig(latency=engine.LatencyConfig(**config.latency.model_dump()))


def _hypervolume_history(records: Sequence[TrialRecord], objectives: Objectives, dense: Any) -> list[tuple[int, float]]:
    history, points = [], []
    for record in sorted(records, key=lambda r: r.number):
        if record.feasible:
            points.append(objectives.losses(record.metrics, dense))
            history.append((record.number, hypervolume(points, [1.0] * len(objectives.names))))
    return history


def _open_parent(tracker: Any, backend: OptunaBackend, loaded: LoadedPipeline, space: SearchSpace, dense: DenseModel) -> str:
    from .tracking import KIND_TAG, PARENT_DESCRIPTION, log_search_inputs

    config = loaded.config
    parent = backend.attrs.get("mlflow_parent_run_id")
    if parent:
        tracker.reopen(parent)
        return str(parent)
    description = PARENT_DESCRIPTION.format(
        name=config.name, trials=config.search.trials, objectives=", ".join(config.objectives), model=config.registered_model
    )
    parent = tracker.create_run(
        f"search {backend.study_name}",
        tags={KIND_TAG: "search", "autoprune.study": backend.study_name, "mlflow.note.content": description},
    )
    backend.set_attr("mlflow_parent_run_id", parent)
    log_search_inputs(
        tracker,
        parent,
        pipeline_text=loaded.text,
        space_text=loaded.space_text,
        resolved_space=space.describe(),
        dense={**dense.reference.__dict__},
        settings={
            "study": backend.study_name,
            "sampler": config.search.sampler,
            "trials": config.search.trials,
            "objectives": ",".join(config.objectives),
            "constraints": ",".join(f"{k}={v:g}" for k, v in config.constraints.active().items()) or "none",
            "dense_source": dense.source,
            "overrides": " ".join(loaded.overrides) or "none",
        },
    )
    return parent


def _finalize_front(
    tracker: Any,
    parent: str,
    front: Sequence[int],
    run_ids: Mapping[int, str],
    records: Sequence[TrialRecord],
    context: dict[str, Any],
) -> list[dict[str, Any]]:
    from .tracking import finalized_members, log_member

    observer: Observer = context["observer"]
    done = finalized_members(tracker, parent)
    by_number = {r.number: r for r in records}
    rows = []
    for index, number in enumerate(front, 1):
        if number in done:
            rows.append(done[number])
            continue
        observer.phase(f"finalizing front member {index}/{len(front)} (trial {number})")
        with tempfile.TemporaryDirectory(prefix="autoprune-front-") as workdir:
            member = finalize_member(by_number[number], export_dir=Path(workdir), **context["finalize"])
            summary = {**member.summary(), "run_id": run_ids[number]}
            splits: data.Splits = context["finalize"]["splits"]
            summary["model_uri"] = log_member(
                tracker, run_ids[number], summary, export_dir=Path(workdir), model=member.result.model,
                example=splits.test.x[:4].numpy(),
            )  # fmt: skip
        rows.append(summary)
    return rows


@dataclass
class _Context:
    """Everything a search needs, prepared once."""

    loaded: LoadedPipeline
    splits: data.Splits
    dense: DenseModel
    space: SearchSpace
    objectives: Objectives
    measure: engine.MeasureConfig
    observer: Observer

    @property
    def config(self) -> PipelineConfig:
        return self.loaded.config


def _prepare(loaded: LoadedPipeline, observer: Observer, seconds: dict[str, float]) -> _Context:
    config = loaded.config
    clock = time.perf_counter()
    observer.phase("loading data")
    splits = data.load(config.data, seed=config.seed, base_dir=loaded.base_dir)
    observer.phase(f"{splits.summary()}; preparing the dense model")
    measure = measure_config(config)
    cache = state_dir(config) / "cache"
    dense = prepare_dense(config, splits, base_dir=loaded.base_dir, cache_dir=cache, latency=measure.latency)
    seconds["dense"] = time.perf_counter() - clock
    groups = engine.discover(dense.model, splits.input_shape)
    space = SearchSpace(
        config.search.space, groups, batch_size=splits.batch_size, train_fraction=config.search.train_fraction, seed=config.seed
    )
    return _Context(loaded, splits, dense, space, Objectives(list(config.objectives)), measure, observer)


def _backend(config: PipelineConfig, objectives: Objectives, resume: bool) -> OptunaBackend:
    return OptunaBackend(
        storage_url(config),
        config.study_name,
        objectives=objectives,
        sampler=config.search.sampler,
        seed=config.seed,
        trials=config.search.trials,
        population_size=config.search.population_size,
        resume=resume,
        heartbeat_s=config.search.heartbeat_s,
    )


def _search(ctx: _Context, backend: OptunaBackend, reporter: Any) -> list[TrialRecord]:
    config = ctx.config
    evaluator = CandidateEvaluator(
        ctx.dense.model, ctx.splits, ctx.space, measure=ctx.measure, reference=ctx.dense.reference,
        constraints=config.constraints.active(),
    )  # fmt: skip
    budget = Budget(config.search.trials, config.search.timeout_s, config.search.max_failed_trials or config.search.trials)
    ctx.observer.search_started(config.search.trials, backend.records())
    return backend.run(evaluator, ctx.objectives, _Tee(reporter, ctx.observer), budget)


def _conclude(ctx: _Context, tracker: Any, parent: str, records: list[TrialRecord], optuna_front: set[int]) -> dict[str, Any]:
    """Front, finalize, registry and summary; returns the rows, aliases and hypervolume history."""
    from .tracking import log_summary, mark_front, register_members

    config, reference = ctx.config, ctx.dense.reference
    front, ranks = front_of(records, ctx.objectives, reference)
    if set(front) != optuna_front:
        log.warning("our front %s differs from Optuna's best_trials %s", front, sorted(optuna_front))
    run_ids = mark_front(tracker, parent, front, ranks)
    finalize = {"space": ctx.space, "dense": ctx.dense.model, "splits": ctx.splits, "config": config, "measure": ctx.measure}
    rows = _finalize_front(tracker, parent, front, run_ids, records, {"observer": ctx.observer, "finalize": finalize})
    aliases = choose_aliases(rows, config, reference)
    if config.tracking.register_models and rows:
        ctx.observer.phase("registering front models")
        versions = register_members(tracker, config.registered_model, rows, parent=parent, dense=reference.__dict__, aliases=aliases)
        for row in rows:
            row["version"] = versions[int(row["trial"])]
    for row in rows:
        row["aliases"] = ",".join(sorted(a for a, n in aliases.items() if n == row["trial"]))
    history = _hypervolume_history(records, ctx.objectives, reference)
    log_summary(
        tracker, parent, records=records, front=front,
        cost_metrics=[m for m in ctx.objectives.metrics if m != "val_accuracy"] or ["macs"],
        dense_costs={**reference.__dict__, "latency_ratio": 1.0}, hypervolume=history, front_rows=rows,
        title=f"{config.name}: {len(records)} trials, front of {len(front)}",
    )  # fmt: skip
    return {"rows": rows, "aliases": aliases, "history": history}


def run(loaded: LoadedPipeline, *, resume: bool = False, observer: Observer | None = None) -> PipelineResult:
    """Run (or with ``resume``, continue) the search a loaded pipeline describes.

    Raises:
        AutoPruneError: Bad data, model or space (with the key that caused it); tracking unreachable.
    """
    from .tracking import MlflowReporter, Tracker

    seconds: dict[str, float] = {}
    ctx = _prepare(loaded, observer or _Quiet(), seconds)
    backend = _backend(ctx.config, ctx.objectives, resume)
    tracker = Tracker(ctx.config.tracking.uri, ctx.config.experiment)
    parent = _open_parent(tracker, backend, loaded, ctx.space, ctx.dense)
    reporter = MlflowReporter(tracker, parent)
    status = "FAILED"
    try:
        clock = time.perf_counter()
        records = _search(ctx, backend, reporter)
        reporter.reconcile(records)  # waits for the background logging, closes runs of killed trials
        seconds["search"] = time.perf_counter() - clock
        clock = time.perf_counter()
        outcome = _conclude(ctx, tracker, parent, records, backend.best_trial_numbers())
        seconds["finalize"] = time.perf_counter() - clock
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        reporter.reconcile(backend.records())  # the interrupted trial ends FAILED, not RUNNING
        raise
    finally:
        reporter.close()
        tracker.finish(parent, status)
    return PipelineResult(
        config=ctx.config,
        study=backend.study_name,
        storage=storage_url(ctx.config),
        experiment_id=tracker.experiment_id,
        experiment_url=tracker.experiment_url,
        model_url=tracker.model_url(ctx.config.registered_model) if ctx.config.tracking.register_models else None,
        parent_run_id=parent,
        dense=ctx.dense.reference,
        records=records,
        front=outcome["rows"],
        aliases=outcome["aliases"],
        hypervolume=outcome["history"][-1][1] if outcome["history"] else 0.0,
        stop_reason=backend.stop_reason,
        seconds=seconds,
    )
