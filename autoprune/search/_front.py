"""The front of a search's trial records: feasible, non-dominated in the normalised losses, with one
latency per architecture."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from ._objective import DenseReference, Objectives, TrialRecord
from ._pareto import non_dominated, pareto_ranks

__all__ = ["architecture_latency", "front_losses", "front_of"]


def architecture_latency(records: Sequence[TrialRecord]) -> dict[int, float]:
    """Trial -> the latency ratio of its architecture: the median over the complete trials that keep
    the same channels in every group. Latency is a property of the architecture, and one measurement
    of it moves by a few percent on a busy machine; without pooling, two trials of the same model with
    different recipes could both reach the front, one by its accuracy and one by a lucky timing."""
    by_kept: dict[tuple[Any, ...], list[TrialRecord]] = {}
    for record in records:
        if record.state == "complete" and record.kept and "latency_ratio" in record.metrics:
            by_kept.setdefault(tuple(sorted(record.kept.items())), []).append(record)
    pooled = {}
    for same in by_kept.values():
        median = statistics.median(float(r.metrics["latency_ratio"]) for r in same)
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
        if record.state == "complete":
            metrics = (
                {**record.metrics, "latency_ratio": pooled[record.number]}
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
