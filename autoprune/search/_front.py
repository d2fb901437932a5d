"""The front of a search's trial records: feasible, non-dominated in the normalised losses, with one
latency per architecture."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .._vocab import Metric, TrialState
from ._pareto import hypervolume, non_dominated, pareto_ranks
from ._records import DenseReference, Objectives, TrialRecord

__all__ = ["architecture_latency", "choose_members", "front_losses", "front_of"]


def architecture_latency(records: Sequence[TrialRecord]) -> dict[int, float]:
    """Trial -> the latency ratio of its architecture: the median over the complete trials that keep
    the same channels in every group. Latency is a property of the architecture, and one measurement
    of it moves by a few percent on a busy machine; without pooling, two trials of the same model with
    different recipes could both reach the front, one by its accuracy and one by a lucky timing."""
    by_kept: dict[tuple[Any, ...], list[TrialRecord]] = {}
    for record in records:
        if record.state == TrialState.COMPLETE and record.kept and Metric.LATENCY_RATIO in record.metrics:
            by_kept.setdefault(tuple(sorted(record.kept.items())), []).append(record)
    pooled = {}
    for same in by_kept.values():
        median = statistics.median(float(r.metrics[Metric.LATENCY_RATIO]) for r in same)
        pooled.update({r.number: median for r in same})
    return pooled


def front_losses(
    records: Sequence[TrialRecord], objectives: Objectives, dense: DenseReference, *, pool_latency: bool = True
) -> dict[int, list[float]]:
    """Trial -> normalised losses of every complete trial, the latency pooled per architecture
    (`architecture_latency`) unless ``pool_latency`` is false."""
    pooled = architecture_latency(records) if pool_latency and "latency_ms" in objectives.names else {}
    losses = {}
    for record in records:
        if record.state == TrialState.COMPLETE:
            metrics = (
                {**record.metrics, Metric.LATENCY_RATIO: pooled[record.number]}
                if record.number in pooled
                else record.metrics
            )
            losses[record.number] = objectives.losses(metrics, dense)
    return losses


def front_of(
    records: Sequence[TrialRecord], objectives: Objectives, dense: DenseReference, *, pool_latency: bool = True
) -> tuple[list[int], dict[int, int]]:
    """Trial numbers on the front (feasible, non-dominated) and the Pareto rank of every feasible trial.
    Trials of one architecture share its pooled latency (`front_losses`)."""
    feasible = [r for r in records if r.feasible]
    by_number = front_losses(records, objectives, dense, pool_latency=pool_latency)
    losses = [by_number[r.number] for r in feasible]
    front = sorted(feasible[i].number for i in non_dominated(losses))
    ranks = {r.number: rank for r, rank in zip(feasible, pareto_ranks(losses))}
    return front, ranks


def choose_members(front: Sequence[int], losses: Mapping[int, Sequence[float]], count: int | None) -> list[int]:
    """At most ``count`` front members, picked greedily by hypervolume: each pick is the member that
    adds the most volume to the picks so far (``losses``: normalised, reference (1, ..., 1)), so the
    picks cover the front where it matters rather than bunching where trials happened to cluster.
    All of them when ``count`` is None or not smaller."""
    if count is None or len(front) <= count:
        return list(front)
    reference = [1.0] * len(next(iter(losses.values())))
    picks: list[int] = []
    for _ in range(count):
        rest = [n for n in front if n not in picks]
        volumes = {n: hypervolume([losses[p] for p in (*picks, n)], reference) for n in rest}
        picks.append(max(rest, key=lambda n: (volumes[n], -n)))  # ties: the earlier trial
    return sorted(picks)
