"""Opening a search: the study (new, or the latest one with ``--resume``, refused when what makes its
trials comparable changed), the candidates it tries first (an earlier front, uniform seeds), and its
MLflow parent run, which every worker and session of the study shares."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..config import LoadedPipeline, PipelineConfig
from ..errors import ConfigError
from ..search import Budget, SearchSpace, SearchStrategy, Study
from ._dense import DenseModel

if TYPE_CHECKING:
    from ..tracking import FrontView, Tracker

__all__ = ["CONCLUDED_ATTR", "PARENT_ATTR", "finished_search", "open_search"]

log = logging.getLogger("autoprune")

PARENT_ATTR = "mlflow_parent_run_id"
CONCLUDED_ATTR = "concluded_trials"
SIGNATURE_ATTR = "signature"
_BEFORE = {"search.strategy": "trials", "latency.mode": "measured"}  # what a key missing from an older signature meant


def _signature(config: PipelineConfig, space: SearchSpace, dense_key: str) -> dict[str, Any]:
    """What must not change when a study is resumed, by the key to name when it does."""
    return {
        "search.strategy": config.search.strategy,
        "search.space": space.describe(),
        "objectives": list(config.objectives),
        "constraints": config.constraints.active(),
        "model": dense_key,
        "latency.mode": config.latency.mode,
    }


def _check_resumable(study: Study, signature: Mapping[str, Any]) -> None:
    stored = study.attrs.get(SIGNATURE_ATTR)
    if stored is None:
        study.set_attr(SIGNATURE_ATTR, signature)
        return
    for key, value in signature.items():
        # studies begun before there were strategies were searched by trials
        if stored.get(key, _BEFORE.get(key)) != json.loads(json.dumps(value)):
            what = "the data or the dense model" if key == "model" else key
            raise ConfigError(
                f"{what} changed since study {study.name!r} started, so its trials are not comparable; "
                "start a new search (run without --resume) or restore it",
                key=key,
            )


def _enqueue(study: Study, space: SearchSpace, members: Sequence[Mapping[str, Any]]) -> None:
    """Queue earlier front members (``study``, ``trial``, logged ``params``) that fit ``space``:
    their exact values from their study when it is in this storage, else their logged text."""
    studies = {name: study.study_params(name) for name in {m["study"] for m in members if m.get("study")}}
    queued = []
    for member in members:
        exact = studies.get(member.get("study"), {}).get(member["trial"])
        params = space.parse_params(exact or member["params"])
        if params is not None:
            queued.append(params)
    log.info("warm start: %d of %d earlier front candidates fit this space", len(queued), len(members))
    study.enqueue(queued)


def _open_parent(
    tracker: Tracker,
    study: Study,
    strategy: SearchStrategy,
    loaded: LoadedPipeline,
    space: SearchSpace,
    dense: DenseModel,
) -> str:
    """The search's MLflow parent run: the study's (every worker and session shares it), else a new one."""
    from ..tracking import KIND_TAG, PARENT_DESCRIPTION, log_search_inputs

    config = loaded.config
    parent = study.attrs.get(PARENT_ATTR)
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
        f"search {study.name}",
        tags={KIND_TAG: "search", "autoprune.study": study.name, "mlflow.note.content": description},
    )
    study.set_attr(PARENT_ATTR, parent)
    settings = {
        "study": study.name,
        "strategy": strategy.describe(),
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
        dense=dense.reference,
        settings=settings,
    )
    return parent


def open_search(
    study: Study,
    strategy: SearchStrategy,
    tracker: Tracker,
    loaded: LoadedPipeline,
    space: SearchSpace,
    dense: DenseModel,
    *,
    resume: bool,
    warm_start: Sequence[Mapping[str, Any]],
) -> str:
    """Open the study (checking a resumed one still fits) and its parent run, under the study's lock;
    a new study first tries the ``warm_start`` candidates (logged params of an earlier front) and
    ``search.seed_uniform`` uniform plans. Returns the parent run's id."""
    with study.lock(":open"):
        created = study.open(resume=resume)
        if resume and created:
            log.warning(
                "--resume: no earlier search of %s in %s, so a new one starts", study.base_name, study.storage_url
            )
        try:
            _check_resumable(study, _signature(loaded.config, space, dense.key))
            if created and warm_start:
                _enqueue(study, space, warm_start)
            if created and loaded.config.search.seed_uniform:
                study.enqueue(space.uniform_seeds(loaded.config.search.seed_uniform))
            tracker.use_experiment(loaded.config.experiment)
            return _open_parent(tracker, study, strategy, loaded, space, dense)
        except BaseException:
            if created:
                study.discard()  # leave no empty study for the next --resume to pick
            raise


def finished_search(
    study: Study,
    strategy: SearchStrategy,
    tracker: Tracker,
    config: PipelineConfig,
    space: SearchSpace,
    dense_key: str,
    budget: Budget,
) -> FrontView | None:
    """The stored front of the pipeline's latest study when ``budget`` is spent in it and it was
    concluded (``--resume`` then has nothing to do, and changes nothing); None while work is left.

    Raises:
        ConfigError: What makes its trials comparable changed (as `open_search` would).
    """
    from ..tracking import latest_front

    with study.lock(":open"):
        if not study.load_latest():
            return None
    finished = sum(r.state.finished for r in study.records())
    if not strategy.finished(study, budget) or study.attrs.get(CONCLUDED_ATTR) != finished:
        return None
    parent = study.attrs.get(PARENT_ATTR)
    if SIGNATURE_ATTR not in study.attrs or not parent:
        return None
    _check_resumable(study, _signature(config, space, dense_key))
    tracker.use_experiment(config.experiment, create=False)
    view = latest_front(tracker, str(parent))
    return view if view.dense is not None else None
