"""The conclude step, once the search's budget is spent: tag the front in MLflow, finalize its members
(a longer fine-tune, the test split once, exports, the MLflow model), register them with aliases, and
summarise the search on its parent run. A session that stops half-way is picked up by the next: the
members already finalized are read back, not fine-tuned again."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from .. import engine
from .._vocab import TrialState
from ..config import FinalizeConfig, PipelineConfig
from ..data import Splits
from ..errors import AutoPruneError
from ..search import (
    DenseReference,
    FinalizedMember,
    Objectives,
    SearchSpace,
    TrialRecord,
    front_losses,
    front_of,
    hypervolume,
)
from ._latency import check_table
from ._members import choose_aliases, choose_members, copies_of_earlier, finalize_member

if TYPE_CHECKING:
    from ..tracking import Tracker

__all__ = ["Conclusion", "SearchState", "conclude", "hypervolume_history", "plot_title"]

log = logging.getLogger("autoprune")

EpochHook = Callable[[str, engine.EpochReport], None]


@dataclass
class SearchState:
    """What concluding a search needs from the pipeline run."""

    config: PipelineConfig
    splits: Splits
    dense_model: nn.Module  # the model front members are pruned from (the dense model, or the supernet)
    reference: DenseReference
    space: SearchSpace
    objectives: Objectives
    measure: engine.MeasureConfig
    phase: Callable[[str], None]
    hold_champion: bool = False  # retrain: choose the champion candidate, but leave the alias to the caller
    training_epoch: EpochHook | None = None  # each epoch of a final fine-tune
    teacher: nn.Module | None = None  # distil from this model instead of ``dense_model`` (one-shot: the dense one)
    finalize: FinalizeConfig | None = None  # how members are finalized (None: the pipeline's ``finalize``)
    table: engine.LatencyTable | None = None  # latency.mode table: checked against the members' measured latency


@dataclass
class Conclusion:
    """What concluding found: the finalized members, every trial on the validation front, the members
    left out as copies of an earlier one, the aliases set, and the hypervolume by trial."""

    members: list[FinalizedMember]
    aliases: dict[str, int]  # the aliases set in the registry
    history: list[tuple[int, float]]
    candidate: int | None = None  # the front member the champion rule picks (it has the alias unless held)
    front: list[int] = field(default_factory=list)  # every trial on the validation front (tagged pareto)
    copies: dict[int, int] = field(default_factory=dict)  # front trial -> the earlier member it repeats

    @property
    def hypervolume(self) -> float:
        return self.history[-1][1] if self.history else 0.0


def hypervolume_history(
    records: Sequence[TrialRecord], objectives: Objectives, dense: DenseReference
) -> list[tuple[int, float]]:
    """Hypervolume of the feasible front after each trial, in the normalised loss space, reference
    (1, ..., 1), with each architecture's latency pooled over the whole search as the front is
    (`front_losses`)."""
    losses = front_losses(records, objectives, dense)
    history, points = [], []
    for record in sorted(records, key=lambda r: r.number):
        if record.feasible:
            points.append(losses[record.number])
            history.append((record.number, hypervolume(points, [1.0] * len(objectives.names))))
    return history


def _chosen(
    state: SearchState,
    tracker: Tracker,
    front: Sequence[int],
    run_ids: Mapping[int, str],
    records: Sequence[TrialRecord],
) -> tuple[list[int], dict[int, int]]:
    """The front members to finalize (`choose_members`) and those left out as copies of an earlier one
    (`copies_of_earlier`, tagged on their runs)."""
    from ..tracking import SAME_AS_TAG

    by_number = {r.number: r for r in records}
    copies = copies_of_earlier([by_number[n] for n in front])
    for number, original in copies.items():
        log.info(
            "front trial %d keeps the same channels as trial %d and scored the same: finalized once", number, original
        )
        tracker.log(run_ids[number], tags={SAME_AS_TAG: str(original)})
    distinct = [n for n in front if n not in copies]
    losses = front_losses(records, state.objectives, state.reference)
    chosen = choose_members(distinct, losses, state.config.finalize.max_members)
    if len(chosen) < len(distinct):
        log.info(
            "finalizing the %d of %d distinct front members adding the most hypervolume", len(chosen), len(distinct)
        )
    return chosen, copies


def _finalize_one(state: SearchState, tracker: Tracker, record: TrialRecord, run_id: str) -> FinalizedMember | None:
    """Finalize one member and log it on its run; None (and the reason tagged) when it cannot be."""
    from ..tracking import FinalizeCurve, log_member

    curve = FinalizeCurve(tracker, run_id)
    progress = partial(state.training_epoch, f"trial {record.number} final fine-tune") if state.training_epoch else None
    with tempfile.TemporaryDirectory(prefix="autoprune-front-") as workdir:
        try:
            member = finalize_member(
                record,
                space=state.space,
                dense=state.dense_model,
                splits=state.splits,
                config=state.config,
                finalize=state.finalize or state.config.finalize,
                measure=state.measure,
                export_dir=Path(workdir),
                on_epoch=_each(curve, progress),
                teacher=state.teacher,
            )
        except AutoPruneError as exc:  # e.g. the longer fine-tune diverged: skip this member, keep the rest
            log.warning("front trial %d could not be finalized: %s", record.number, exc)
            tracker.log(run_id, tags={"autoprune.finalize_error": str(exc)[:5000]})
            return None
        finally:  # the epochs run so far, also of a fine-tune that failed
            curve.flush()
        assert member.result.model is not None  # evaluate_candidate always returns its model
        deployable = engine.Preprocessed.for_splits(member.result.model, state.splits)
        return log_member(
            tracker,
            member.finalized(run_id, state.reference.latency_ms),
            export_dir=Path(workdir),
            model=deployable,
            example=deployable.raw(state.splits.test.x[:4]).numpy(),
            metadata=member.deployed,
        )


def _finalize_members(
    state: SearchState,
    tracker: Tracker,
    parent: str,
    front: Sequence[int],
    run_ids: Mapping[int, str],
    records: Sequence[TrialRecord],
) -> tuple[list[FinalizedMember], dict[int, int]]:
    """Final figures of every chosen front member: finalized now, or read back when a session already
    did it; and the members left out as copies."""
    from ..tracking import finalized_members

    by_number = {r.number: r for r in records}
    done = finalized_members(tracker, parent)
    chosen, copies = _chosen(state, tracker, front, run_ids, records)
    members = []
    for index, number in enumerate(chosen, 1):
        if number in done:
            members.append(done[number])
            continue
        state.phase(f"finalizing front member {index}/{len(chosen)} (trial {number})")
        member = _finalize_one(state, tracker, by_number[number], run_ids[number])
        if member is not None:
            members.append(member)
    return members, copies


def _each(*hooks: Callable[[engine.EpochReport], None] | None) -> Callable[[engine.EpochReport], None]:
    """One epoch callback calling every hook given (None: skipped)."""
    live = [hook for hook in hooks if hook is not None]

    def call(report: engine.EpochReport) -> None:
        for hook in live:
            hook(report)

    return call


def plot_title(name: str, records: Sequence[TrialRecord], members: int) -> str:
    """``name: 24 trials (2 failed), front of 5``: skipped twins and trials still running are not trials run."""
    completed = sum(r.state == TrialState.COMPLETE for r in records)
    failed = sum(r.state == TrialState.FAILED for r in records)
    return f"{name}: {completed} trials{f' ({failed} failed)' if failed else ''}, front of {members}"


def conclude(
    state: SearchState, tracker: Tracker, parent: str, records: list[TrialRecord], optuna_front: set[int]
) -> Conclusion:
    """Front, finalize, registry and the parent run's summary."""
    from ..tracking import log_summary, mark_front, register_members, save_front_view

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
    members, copies = _finalize_members(state, tracker, parent, front, run_ids, records)
    chosen = choose_aliases(members, config, reference)
    aliases = {alias: n for alias, n in chosen.items() if not (state.hold_champion and alias == "champion")}
    versions: dict[int, int] = {}
    if config.tracking.register_models:
        state.phase("registering front models")
        versions = register_members(
            tracker, config.registered_model, members, parent=parent, dense=reference, aliases=aliases
        )
    members = [m.registered(versions.get(m.trial), [a for a, n in aliases.items() if n == m.trial]) for m in members]
    save_front_view(tracker, parent, members)
    if state.table is not None:
        state.table.save()  # the entries the search measured, for the next run
        check_table(tracker, parent, records, members)
    history = hypervolume_history(records, state.objectives, reference)
    log_summary(
        tracker,
        parent,
        records=records,
        front=front,
        cost_metrics=state.objectives.cost_metrics,
        dense=reference,
        hypervolume=history,
        members=members,
        title=plot_title(config.name, records, len(front)),
    )
    return Conclusion(members, aliases, history, chosen.get("champion"), front=list(front), copies=copies)
