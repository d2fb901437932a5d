"""One pipeline run, end to end (used by ``autoprune run`` and, later, ``retrain``).

Order matters for the promise "bad input writes nothing": data, model, groups, search space and
constraints are checked first; then the stores are connected; then the dense model is trained (or
loaded); only then are the study and the MLflow parent run created. After the search, the last
worker to finish (under the study's lock) tags the front, finalizes and registers it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from . import data, engine, models
from ._conclude import Conclusion, SearchState, conclude
from ._dense import DenseModel, build_dense, checkpoint_path, fit_layout, prepare_dense
from ._preflight import build_space
from ._sqlite import sqlite_path
from .config import LoadedPipeline, PipelineConfig
from .errors import ConfigError
from .search import (
    Budget,
    CandidateEvaluator,
    DenseReference,
    NullReporter,
    Objectives,
    OptunaBackend,
    RayBackend,
    SearchSpace,
    TrialRecord,
    TrialReporter,
    join_ray,
    leave_ray,
)

__all__ = [
    "Observer",
    "PipelineResult",
    "QuietObserver",
    "dense_cache_dir",
    "make_backend",
    "measure_config",
    "run",
    "state_dir",
    "storage_url",
]

log = logging.getLogger("autoprune")
PARENT_ATTR = "mlflow_parent_run_id"
CONCLUDED_ATTR = "concluded_trials"
SIGNATURE_ATTR = "signature"


class Observer(TrialReporter, Protocol):
    """Progress hooks for a person watching (the CLI's progress bar)."""

    def phase(self, text: str) -> None: ...

    def training_epoch(self, what: str, report: engine.EpochReport) -> None:
        """An epoch of a long training outside the trials: the dense model's, a front member's final fine-tune."""

    def search_started(
        self, total: int, earlier: Sequence[TrialRecord], objectives: Objectives, reference: DenseReference
    ) -> None: ...


class QuietObserver(NullReporter):
    """An observer that only logs the phases (for library use without a display)."""

    def phase(self, text: str) -> None:
        log.info(text)

    def training_epoch(self, what: str, report: engine.EpochReport) -> None:
        pass

    def search_started(
        self, total: int, earlier: Sequence[TrialRecord], objectives: Objectives, reference: DenseReference
    ) -> None:
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
    """What a pipeline run leaves behind, and where to look at it."""

    config: PipelineConfig
    study: str
    storage: str
    experiment_id: str
    experiment_url: str
    front_url: str
    model_url: str | None
    parent_run_id: str
    dense: Any
    splits: data.Splits
    records: list[TrialRecord]
    front: list[dict[str, Any]]  # the finalized members' figures
    front_trials: list[int] = field(default_factory=list)  # every trial on the validation front
    copies: dict[int, int] = field(default_factory=dict)  # front trial -> the finalized member it repeats
    aliases: dict[str, int] = field(default_factory=dict)
    candidate: int | None = None
    hypervolume: float = 0.0
    stop_reason: str | None = None
    failed_out: bool = False
    concluded: bool = True
    seconds: dict[str, float] = field(default_factory=dict)


def state_dir(config: PipelineConfig) -> Path:
    """Where local state lives: beside a sqlite tracking store, else ``./mlflow``."""
    database = sqlite_path(config.tracking.uri)
    return database.parent if database is not None else Path("mlflow")


def dense_cache_dir(config: PipelineConfig) -> Path:
    """Where trained dense models are cached (by `dense_cache_key`): beside the local state."""
    return state_dir(config) / "cache"


def storage_url(config: PipelineConfig) -> str:
    """The Optuna storage: the pipeline's, else a sqlite file beside the tracking store."""
    return config.search.storage or f"sqlite:///{state_dir(config) / 'optuna.db'}"


def measure_config(config: PipelineConfig) -> engine.MeasureConfig:
    return engine.MeasureConfig(latency=engine.LatencyConfig(**config.latency.model_dump()))


@dataclass
class _Checked:
    """Everything known valid before a store is touched."""

    splits: data.Splits
    model: Any
    space: SearchSpace
    objectives: Objectives


def make_backend(config: PipelineConfig, objectives: Objectives) -> OptunaBackend:
    """The pipeline's search backend, connected to its study storage (no study opened yet)."""
    args: dict[str, Any] = dict(
        objectives=objectives,
        sampler=config.search.sampler,
        seed=config.seed,
        trials=config.search.trials,
        population_size=config.search.population_size,
        heartbeat_s=config.search.heartbeat_s,
    )
    if config.search.backend == "ray":
        return RayBackend(
            storage_url(config), config.study_name, ray=config.ray, results_dir=state_dir(config) / "ray", **args
        )
    return OptunaBackend(storage_url(config), config.study_name, **args)


def _check(loaded: LoadedPipeline, observer: Observer) -> _Checked:
    config = loaded.config
    observer.phase("loading data")
    splits = data.load(config.data, seed=config.seed, base_dir=loaded.base_dir)
    observer.phase(f"{splits.summary()}; building the model")
    model = build_dense(config, splits, base_dir=loaded.base_dir)
    splits, refused = fit_layout(model, config, splits)
    if refused is not None:
        log.info("the model cannot take channels-last images (%s): it runs in the default layout, more slowly", refused)
    checkpoint = checkpoint_path(config, loaded.base_dir)
    if checkpoint is not None:
        models.load_checkpoint(model, checkpoint)  # a bad checkpoint is bad input: say so before any store
    groups = engine.discover(model, splits.input_shape)
    space = build_space(config, model, groups, splits)
    return _Checked(splits, model, space, Objectives(list(config.objectives)))


def _open_parent(
    tracker: Any, backend: OptunaBackend, loaded: LoadedPipeline, space: SearchSpace, dense: DenseModel
) -> str:
    """The search's MLflow parent run: the study's (every worker and session shares it), else a new one."""
    from .tracking import KIND_TAG, PARENT_DESCRIPTION, log_search_inputs

    config = loaded.config
    parent = backend.attrs.get(PARENT_ATTR)
    if parent:
        tracker.reopen(parent)
        return str(parent)
    description = PARENT_DESCRIPTION.format(
        name=config.name,
        trials=config.search.trials,
        objectives=", ".join(config.objectives),
        model=config.registered_model,
    )
    parent = tracker.create_run(
        f"search {backend.study_name}",
        tags={KIND_TAG: "search", "autoprune.study": backend.study_name, "mlflow.note.content": description},
    )
    backend.set_attr(PARENT_ATTR, parent)
    settings = {
        "study": backend.study_name,
        "sampler": config.search.sampler,
        "trials": config.search.trials,
        "objectives": ",".join(config.objectives),
        "constraints": ",".join(f"{k}={v:g}" for k, v in config.constraints.active().items()) or "none",
        "dense_source": dense.source,
        "overrides": " ".join(loaded.overrides) or "none",
    }
    log_search_inputs(
        tracker,
        parent,
        pipeline_text=loaded.text,
        space_text=loaded.space_text,
        resolved_space=space.describe(),
        dense=dense.reference.__dict__,
        settings=settings,
    )
    return parent


def _search(
    checked: _Checked,
    dense: DenseModel,
    config: PipelineConfig,
    backend: OptunaBackend,
    reporter: Any,
    observer: Observer,
) -> list[TrialRecord]:
    evaluator = CandidateEvaluator(
        dense.model,
        checked.splits,
        checked.space,
        measure=measure_config(config),
        reference=dense.reference,
        constraints=config.constraints.active(),
        skip_over_limit=config.search.skip_over_limit,
    )
    budget = Budget(
        config.search.trials, config.search.timeout_s, config.search.max_failed_trials or config.search.trials
    )
    observer.search_started(config.search.trials, backend.records(), checked.objectives, dense.reference)
    return backend.run(evaluator, checked.objectives, _Tee(reporter, observer), budget)


def _signature(loaded: LoadedPipeline, space: SearchSpace, dense: DenseModel) -> dict[str, Any]:
    """What must not change when a study is resumed, by the key to name when it does."""
    config = loaded.config
    return {
        "search.space": space.describe(),
        "objectives": list(config.objectives),
        "constraints": config.constraints.active(),
        "model": dense.key,
    }


def _check_resumable(backend: OptunaBackend, signature: Mapping[str, Any]) -> None:
    stored = backend.attrs.get(SIGNATURE_ATTR)
    if stored is None:
        backend.set_attr(SIGNATURE_ATTR, signature)
        return
    for key, value in signature.items():
        if stored.get(key) != json.loads(json.dumps(value)):
            what = "the data or the dense model" if key == "model" else key
            raise ConfigError(
                f"{what} changed since study {backend.study_name!r} started, so its trials are not comparable; "
                "start a new search (run without --resume) or restore it",
                key=key,
            )


def _enqueue(backend: OptunaBackend, space: SearchSpace, members: Sequence[Mapping[str, Any]]) -> None:
    """Queue earlier front members (``study``, ``trial``, logged ``params``) that fit ``space``:
    their exact values from their study when it is in this storage, else their logged text."""
    studies = {name: backend.study_params(name) for name in {m["study"] for m in members if m.get("study")}}
    queued = []
    for member in members:
        exact = studies.get(member.get("study"), {}).get(member["trial"])
        params = space.parse_params(exact or member["params"])
        if params is not None:
            queued.append(params)
    log.info("warm start: %d of %d earlier front candidates fit this space", len(queued), len(members))
    backend.enqueue(queued)


def _open(
    backend: OptunaBackend,
    tracker: Any,
    loaded: LoadedPipeline,
    space: SearchSpace,
    dense: DenseModel,
    resume: bool,
    warm_start: Sequence[Mapping[str, Any]],
) -> str:
    """Open the study (checking a resumed one still fits) and its parent run, under the study's lock;
    a new study first tries the ``warm_start`` candidates (logged params of an earlier front)."""
    with backend.lock(":open"):
        created = backend.open(resume=resume)
        if resume and created:
            log.warning(
                "--resume: no earlier search of %s in %s, so a new one starts", backend.study_name, backend.storage_url
            )
        try:
            _check_resumable(backend, _signature(loaded, space, dense))
            if created and warm_start:
                _enqueue(backend, space, warm_start)
            if created and loaded.config.search.seed_uniform:
                backend.enqueue(space.uniform_seeds(loaded.config.search.seed_uniform))
            tracker.use_experiment(loaded.config.experiment)
            return _open_parent(tracker, backend, loaded, space, dense)
        except BaseException:
            if created:
                backend.discard()  # leave no empty study for the next --resume to pick
            raise


def _conclude_if_last(
    state: SearchState, backend: OptunaBackend, tracker: Any, parent: str
) -> tuple[list[TrialRecord], Conclusion | None]:
    """Conclude the search unless another worker still runs trials (the last one out concludes).

    Trials of a killed worker are RUNNING until their heartbeat is stale: wait that long for them.
    """
    with backend.lock(":conclude"):
        backend.settle(4 * backend.heartbeat_s)
        records = backend.records()
        if any(r.state == "running" for r in records):
            log.info("other workers still run trials; the last one to finish concludes the search")
            return records, None
        conclusion = conclude(state, tracker, parent, records, backend.best_trial_numbers())
        backend.set_attr(CONCLUDED_ATTR, sum(r.state in ("complete", "failed") for r in records))
        return records, conclusion


def _result(
    config: PipelineConfig,
    backend: OptunaBackend,
    tracker: Any,
    parent: str,
    dense: DenseModel,
    splits: data.Splits,
    records: list[TrialRecord],
    conclusion: Conclusion | None,
    seconds: dict[str, float],
) -> PipelineResult:
    return PipelineResult(
        config=config,
        study=backend.study_name,
        storage=storage_url(config),
        experiment_id=tracker.experiment_id,
        experiment_url=tracker.experiment_url,
        front_url=tracker.front_url,
        model_url=tracker.model_url(config.registered_model) if config.tracking.register_models else None,
        parent_run_id=parent,
        dense=dense.reference,
        splits=splits,
        records=records,
        front=conclusion.rows if conclusion else [],
        front_trials=conclusion.front if conclusion else [],
        copies=conclusion.copies if conclusion else {},
        aliases=conclusion.aliases if conclusion else {},
        candidate=conclusion.candidate if conclusion else None,
        hypervolume=conclusion.hypervolume if conclusion else 0.0,
        stop_reason=backend.stop_reason,
        failed_out=backend.failed_out,
        concluded=conclusion is not None,
        seconds=seconds,
    )


def run(
    loaded: LoadedPipeline,
    *,
    resume: bool = False,
    observer: Observer | None = None,
    warm_start: Sequence[Mapping[str, Any]] = (),
    hold_champion: bool = False,
) -> PipelineResult:
    """Run (or with ``resume``, continue) the search a loaded pipeline describes.

    ``warm_start``: parameter sets (as logged in MLflow) a new study tries first. ``hold_champion``:
    pick the champion candidate (`PipelineResult.candidate`) but leave the registry's alias alone.

    Raises:
        AutoPruneError: Bad data, model, space or constraints (with the key that caused it), or an
            unreachable store; in those cases nothing has been written.
    """
    config, observer = loaded.config, observer or QuietObserver()
    clock = time.perf_counter()
    checked = _check(loaded, observer)
    joined = False
    if config.search.backend == "ray":
        observer.phase("joining the Ray cluster")
        joined = join_ray(config.ray.address)  # an unreachable cluster is reported before anything is written
    try:
        backend = make_backend(config, checked.objectives)
        return _run_checked(loaded, checked, backend, observer, clock, resume, warm_start, hold_champion)
    finally:
        if joined:
            leave_ray()


def _run_checked(
    loaded: LoadedPipeline,
    checked: _Checked,
    backend: OptunaBackend,
    observer: Observer,
    clock: float,
    resume: bool,
    warm_start: Sequence[Mapping[str, Any]],
    hold_champion: bool,
) -> PipelineResult:
    """`run` once the input is known valid: stores, dense model, study, search, conclusion."""
    from .tracking import MlflowReporter, Tracker

    config = loaded.config
    seconds: dict[str, float] = {}
    with backend.lock(":open"):  # workers starting together must not both create the MLflow tables
        tracker = Tracker(config.tracking.uri, None)
    observer.phase("preparing the dense model")
    measure = measure_config(config)
    dense = prepare_dense(
        config,
        checked.splits,
        checked.model,
        base_dir=loaded.base_dir,
        cache_dir=dense_cache_dir(config),
        latency=measure.latency,
        on_epoch=partial(observer.training_epoch, "dense model"),
    )
    seconds["dense"] = time.perf_counter() - clock
    observer.phase(dense.describe())
    parent = _open(backend, tracker, loaded, checked.space, dense, resume, warm_start)
    reporter = MlflowReporter(tracker, parent, logged_params=checked.space.logged_params)
    state = SearchState(
        config,
        checked.splits,
        dense.model,
        dense.reference,
        checked.space,
        checked.objectives,
        measure,
        observer.phase,
        hold_champion,
        observer.training_epoch,
    )
    status: str | None = "FAILED"
    try:
        clock = time.perf_counter()
        records = _search(checked, dense, config, backend, reporter, observer)
        reporter.reconcile(records)  # waits for the background logging, closes runs of killed trials
        seconds["search"], clock = time.perf_counter() - clock, time.perf_counter()
        records, conclusion = _conclude_if_last(state, backend, tracker, parent)
        seconds["finalize"] = time.perf_counter() - clock
        status = "FINISHED" if conclusion else None  # still RUNNING while other workers search
    except KeyboardInterrupt:
        status = "KILLED"
        with contextlib.suppress(Exception):  # the resume hint matters more than a logging error now
            reporter.reconcile(backend.records())  # the interrupted trial ends FAILED, not RUNNING
        raise
    finally:
        reporter.close()
        if status:
            tracker.finish(parent, status)
    return _result(config, backend, tracker, parent, dense, checked.splits, records, conclusion, seconds)
