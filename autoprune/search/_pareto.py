"""Pareto dominance, non-dominated sorting and hypervolume, for minimisation vectors.

Our own small implementation (the front is cross-checked against Optuna's ``study.best_trials`` and
the hypervolume against Optuna's in the tests). Maximised objectives are negated or turned into
losses by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["dominates", "hypervolume", "non_dominated", "pareto_ranks"]

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
    """True when ``a`` is no worse than ``b`` everywhere and strictly better somewhere."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def non_dominated(points: Sequence[Point]) -> list[int]:
    """Indices of the points no other point dominates (duplicates are all kept)."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


def pareto_ranks(points: Sequence[Point]) -> list[int]:
    """Non-dominated sorting: rank 1 is the front, rank 2 the front once rank 1 is removed, and so on."""
    ranks = [0] * len(points)
    remaining = list(range(len(points)))
    rank = 1
    while remaining:
        layer = [remaining[i] for i in non_dominated([points[k] for k in remaining])]
        for index in layer:
            ranks[index] = rank
        remaining = [k for k in remaining if ranks[k] == 0]
        rank += 1
    return ranks


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """Volume dominated by ``points`` and bounded by ``reference`` (exact, by slicing the last axis).

    Points that do not strictly improve on the reference in every coordinate add nothing.
    """
    inside = [tuple(p) for p in points if all(x < r for x, r in zip(p, reference))]
    return _slice_volume(inside, tuple(reference))


def _slice_volume(points: list[tuple[float, ...]], reference: tuple[float, ...]) -> float:
    if not points:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in points)
    ordered = sorted(points, key=lambda p: p[-1])
    volume = 0.0
    for index, point in enumerate(ordered):
        upper = ordered[index + 1][-1] if index + 1 < len(ordered) else reference[-1]
        if upper > point[-1]:
            prefix = [p[:-1] for p in ordered[: index + 1]]
            volume += _slice_volume(_front_points(prefix), reference[:-1]) * (upper - point[-1])
    return volume


def _front_points(points: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    return [points[i] for i in non_dominated(points)]
