"""After the search, in MLflow: tag the front, finalize its members (longer fine-tune, the test split
once, exports, model), register them with aliases, and summarise the search on its parent run."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from . import engine
from ._finalize import choose_aliases, choose_members, copies_of_earlier, finalize_member
from .config import PipelineConfig
from .data import Splits
from .errors import AutoPruneError
from .search import DenseReference, Objectives, SearchSpace, TrialRecord, front_losses, front_of, hypervolume

__all__ = ["Conclusion", "SearchState", "conclude", "hypervolume_history"]

log = logging.getLogger("autoprune")


@dataclass
class SearchState:
    """What concluding a search needs from the pipeline run."""

    config: PipelineConfig
    splits: Splits
    dense_model: Any
    reference: DenseReference
    space: SearchSpace
    objectives: Objectives
    measure: engine.MeasureConfig
    phase: Any  # callable(str) reporting progress
    hold_champion: bool = False  # retrain: choose the champion candidate, but leave the alias to the caller
    training_epoch: Any = None  # callable(what, EpochReport) reporting each epoch of a final fine-tune


@dataclass
class Conclusion:
    rows: list[dict[str, Any]]
    aliases: dict[str, int]  # the aliases set in the registry
    history: list[tuple[int, float]]
    candidate: int | None = None  # the front member the champion rule picks (it has the alias unless held)
    front: list[int] = field(default_factory=list)  # every trial on the validation front (tagged pareto)
    copies: dict[int, int] = field(
        default_factory=dict
    )  # front trial -> the earlier member it repeats (finalized once)

    @property
    def hypervolume(self) -> float:
        return self.history[-1][1] if self.history else 0.0


def hypervolume_history(
    records: Sequence[TrialRecord], objectives: Objectives, dense: DenseReference
) -> list[tuple[int, float]]:
    """Hypervolume of the feasible front after each trial, in the normalised loss space, reference (1, ..., 1),
    with each architecture's latency pooled over the whole search as the front is (`front_losses`)."""
    losses = front_losses(records, objectives, dense)
    history, points = [], []
    for record in sorted(records, key=lambda r: r.number):
        if record.feasible:
            points.append(losses[record.number])
            history.append((record.number, hypervolume(points, [1.0] * len(objectives.names))))
    return history


def _finalize_members(
    state: SearchState,
    tracker: Any,
    parent: str,
    front: Sequence[int],
    run_ids: Mapping[int, str],
    records: Sequence[TrialRecord],
) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """Final figures of every front member: finalized now, or read back when a session already did it;
    and the members left out as copies of an earlier one (`copies_of_earlier`)."""
    from .tracking import FinalizeCurve, finalized_members, log_member

    done = finalized_members(tracker, parent)
    by_number = {r.number: r for r in records}
    copies = copies_of_earlier([by_number[n] for n in front])
    for number, original in copies.items():
        log.info(
            "front trial %d keeps the same channels as trial %d and scored the same: finalized once, as trial %d",
            number,
            original,
            original,
        )
        tracker.log(run_ids[number], tags={"autoprune.same_as_trial": str(original)})
    distinct = [n for n in front if n not in copies]
    losses = front_losses(records, state.objectives, state.reference)
    chosen = choose_members(distinct, losses, state.config.finalize.max_members)
    if len(chosen) < len(distinct):
        log.info(
            "finalizing the %d of %d distinct front members adding the most hypervolume (finalize.max_members)",
            len(chosen),
            len(distinct),
        )
    rows = []
    for index, number in enumerate(chosen, 1):
        if number in done:
            rows.append(done[number])
            continue
        state.phase(f"finalizing front member {index}/{len(chosen)} (trial {number})")
        curve = FinalizeCurve(tracker, run_ids[number])
        progress = partial(state.training_epoch, f"trial {number} final fine-tune") if state.training_epoch else None
        with tempfile.TemporaryDirectory(prefix="autoprune-front-") as workdir:
            try:
                member = finalize_member(
                    by_number[number],
                    space=state.space,
                    dense=state.dense_model,
                    splits=state.splits,
                    config=state.config,
                    measure=state.measure,
                    export_dir=Path(workdir),
                    on_epoch=_each(curve, progress),
                )
            except AutoPruneError as exc:  # e.g. the longer fine-tune diverged: skip this member, keep the rest
                log.warning("front trial %d could not be finalized: %s", number, exc)
                tracker.log(run_ids[number], tags={"autoprune.finalize_error": str(exc)[:5000]})
                continue
            finally:  # the epochs run so far, also of a fine-tune that failed
                curve.flush()
            summary = {**member.summary(), "run_id": run_ids[number]}
            summary["model_uri"] = log_member(
                tracker,
                run_ids[number],
                summary,
                export_dir=Path(workdir),
                model=member.result.model,
                example=state.splits.test.x[:4].numpy(),
            )
        rows.append(summary)
    return rows, copies


def _each(*hooks: Callable[[Any], None] | None) -> Callable[[Any], None]:
    """One epoch callback calling every hook given (None: skipped)."""
    live = [hook for hook in hooks if hook is not None]

    def call(report: Any) -> None:
        for hook in live:
            hook(report)

    return call


def _plot_title(name: str, records: Sequence[TrialRecord], members: int) -> str:
    """``name: 24 trials (2 failed), front of 5``: skipped twins and trials still running are not trials run."""
    completed = sum(r.state == "complete" for r in records)
    failed = sum(r.state == "failed" for r in records)
    return f"{name}: {completed} trials{f' ({failed} failed)' if failed else ''}, front of {members}"


def conclude(
    state: SearchState, tracker: Any, parent: str, records: list[TrialRecord], optuna_front: set[int]
) -> Conclusion:
    """Front, finalize, registry and the parent run's summary."""
    from .tracking import log_summary, mark_front, register_members

    config, reference = state.config, state.reference
    front, ranks = front_of(records, state.objectives, reference)
    measured_front, _ = front_of(records, state.objectives, reference, pool_latency=False)  # each trial's own latency
    if set(measured_front) != optuna_front:
        log.warning("our front %s differs from Optuna's best_trials %s", measured_front, sorted(optuna_front))
    if set(front) != set(measured_front):
        log.info(
            "with one latency per architecture (the median of its trials) the front is %s, not %s",
            front,
            measured_front,
        )
    run_ids = mark_front(tracker, parent, front, ranks)
    rows, copies = _finalize_members(state, tracker, parent, front, run_ids, records)
    chosen = choose_aliases(rows, config, reference)
    aliases = {alias: n for alias, n in chosen.items() if not (state.hold_champion and alias == "champion")}
    if config.tracking.register_models:
        state.phase("registering front models")
        versions = register_members(
            tracker, config.registered_model, rows, parent=parent, dense=reference.__dict__, aliases=aliases
        )
        for row in rows:
            row["version"] = versions[int(row["trial"])]
    for row in rows:
        row["aliases"] = ",".join(sorted(a for a, n in aliases.items() if n == row["trial"]))
    history = hypervolume_history(records, state.objectives, reference)
    log_summary(
        tracker,
        parent,
        records=records,
        front=front,
        cost_metrics=[m for m in state.objectives.metrics if m != "val_accuracy"] or ["macs"],
        dense_costs={**reference.__dict__, "latency_ratio": 1.0},
        hypervolume=history,
        front_rows=rows,
        title=_plot_title(config.name, records, len(front)),
    )
    return Conclusion(rows, aliases, history, chosen.get("champion"), front=list(front), copies=copies)
