"""Running pipelines: the public Python API behind ``autoprune run``, ``retrain`` and ``validate``.

Each function takes a pipeline file (with ``--set``-style overrides) or an already loaded pipeline,
and raises `AutoPruneError`s that name the file, line and key the problem comes from, as the command
line prints them::

    from autoprune import workflow

    result = workflow.run("pipelines/quickstart_digits.yaml", overrides=["search.trials=8"])
    for member in result.members:
        print(member.trial, member.test_accuracy, member.macs, member.aliases)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import LoadedPipeline, load_pipeline
from ..errors import AutoPruneError, UsageError
from ._locations import cache_dir, state_dir, storage_url
from ._observer import Observer, QuietObserver
from ._quantize import MIN_AGREEMENT, Quantized, quantize_member
from ._result import PipelineResult
from ._retrain import RetrainReport, retrain_loaded
from ._run import run_loaded
from ._share import SHARED_FILE, Shared, share_member
from ._validate import ValidationReport, validate_loaded

__all__ = [
    "MIN_AGREEMENT",
    "SHARED_FILE",
    "Observer",
    "PipelineResult",
    "Quantized",
    "QuietObserver",
    "RetrainReport",
    "Shared",
    "ValidationReport",
    "cache_dir",
    "load",
    "located",
    "quantize_member",
    "retrain",
    "run",
    "share_member",
    "state_dir",
    "storage_url",
    "validate",
]

Pipeline = LoadedPipeline | str | Path


def load(pipeline: Pipeline, overrides: Sequence[str] = ()) -> LoadedPipeline:
    """A pipeline read from its file (``overrides`` as ``key.path=value``), or ``pipeline`` itself when
    it is loaded already (then ``overrides`` must be empty)."""
    if isinstance(pipeline, LoadedPipeline):
        if overrides:
            raise UsageError("overrides apply to a pipeline file; this pipeline is loaded already")
        return pipeline
    return load_pipeline(pipeline, overrides)


@contextlib.contextmanager
def located(loaded: LoadedPipeline) -> Iterator[None]:
    """Errors raised inside name the file and line of their key (``pipelines/x.yaml:12: data.path: ...``)."""
    try:
        yield
    except AutoPruneError as exc:
        loaded.locate(exc)
        raise


def run(
    pipeline: Pipeline,
    *,
    overrides: Sequence[str] = (),
    resume: bool = False,
    observer: Observer | None = None,
    warm_start: Sequence[Mapping[str, Any]] = (),
    hold_champion: bool = False,
) -> PipelineResult:
    """Run (or with ``resume``, continue) the search a pipeline describes.

    ``warm_start``: parameter sets (as logged in MLflow) a new study tries first. ``hold_champion``:
    pick the champion candidate (`PipelineResult.candidate`) but leave the registry's alias alone.

    Raises:
        AutoPruneError: Bad data, model, space or constraints (with the file, line and key that caused
            it), or an unreachable store; in those cases nothing has been written.
    """
    loaded = load(pipeline, overrides)
    with located(loaded):
        return run_loaded(loaded, resume=resume, observer=observer, warm_start=warm_start, hold_champion=hold_champion)


def retrain(
    pipeline: Pipeline, *, overrides: Sequence[str] = (), observer: Observer | None = None
) -> tuple[RetrainReport, PipelineResult]:
    """One scheduled retrain: a new search warm-started from the last front; the registry's
    ``champion`` moves only when the new candidate wins on the same test split."""
    loaded = load(pipeline, overrides)
    with located(loaded):
        return retrain_loaded(loaded, observer=observer)


def validate(pipeline: Pipeline, *, overrides: Sequence[str] = ()) -> ValidationReport:
    """Everything `run` checks before it trains or writes anything: data, model, groups, space,
    constraints, that the smallest model of the space runs, the ONNX export.

    Raises:
        AutoPruneError: The first problem found, with the file, line and key it comes from.
    """
    loaded = load(pipeline, overrides)
    with located(loaded):
        return validate_loaded(loaded)
