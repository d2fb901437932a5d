"""After the search: the front's members are fine-tuned longer, evaluated once on the held-out test
split, exported (plan + state dict, ONNX), and the registry aliases are chosen."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from . import engine, models
from .config import FinalizeConfig, PipelineConfig
from .data import Splits
from .search import DenseReference, SearchSpace, TrialRecord, hypervolume

__all__ = ["FrontMember", "choose_aliases", "choose_members", "copies_of_earlier", "final_candidate", "finalize_member"]

log = logging.getLogger("autoprune")


@dataclass
class FrontMember:
    """A Pareto-optimal trial after its final fine-tune, with what it exported."""

    record: TrialRecord
    candidate: engine.Candidate
    result: engine.CandidateResult
    test_accuracy: float
    export_dir: Path
    onnx_path: Path | None = None

    @property
    def number(self) -> int:
        return self.record.number

    @property
    def latency_ratio(self) -> float:
        return self.result.latency_ms / self.result.dense_latency_ms

    def summary(self) -> dict[str, Any]:
        """The final figures, named as they are logged on the member's run."""
        return {
            "trial": self.number,
            "test_accuracy": self.test_accuracy,
            "final_val_accuracy": self.result.val_accuracy,
            "final_params": self.result.params,
            "final_macs": self.result.macs,
            "final_size_bytes": self.result.size_bytes,
            "final_latency_ms": self.result.latency_ms,
            "final_latency_ratio": self.latency_ratio,
            "final_speedup_vs_dense": self.result.speedup_vs_dense,
            "final_epochs": self.candidate.finetune.epochs,
            "final_lr": self.candidate.finetune.lr,
            "final_distill_alpha": self.candidate.finetune.distill_alpha,
            "final_ema_decay": self.candidate.finetune.ema_decay,
        }


def copies_of_earlier(members: Sequence[TrialRecord]) -> dict[int, int]:
    """Members that repeat an earlier one: trial -> the earlier trial. Two trials whose ratios differ
    can keep the same channels in every group; with the same recipe they also reach the same
    validation accuracy, and finalizing both would spend the same fine-tune twice for one model."""
    first: dict[tuple[Any, ...], int] = {}
    copies = {}
    for record in sorted(members, key=lambda r: r.number):
        if not record.kept:
            continue
        key = (tuple(sorted(record.kept.items())), record.metrics.get("val_accuracy"))
        if key in first:
            copies[record.number] = first[key]
        else:
            first[key] = record.number
    return copies


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


def final_candidate(candidate: engine.Candidate, settings: FinalizeConfig) -> engine.Candidate:
    """The trial's candidate with the final fine-tune: on the whole training split for at least
    ``finalize.epochs`` (unless null), with ``finalize.lr`` / ``distill_alpha`` / ``ema_decay`` where
    they are set."""
    changes: dict[str, Any] = {}
    if settings.epochs is not None:
        changes.update(epochs=max(settings.epochs, candidate.finetune.epochs), train_fraction=1.0)
    if settings.lr is not None:
        changes["lr"] = settings.lr
    if settings.distill_alpha is not None:
        changes["distill_alpha"] = settings.distill_alpha
    if settings.ema_decay is not None:
        changes["ema_decay"] = settings.ema_decay
    return dataclasses.replace(candidate, finetune=dataclasses.replace(candidate.finetune, **changes))


def finalize_member(
    record: TrialRecord,
    *,
    space: SearchSpace,
    dense: nn.Module,
    splits: Splits,
    config: PipelineConfig,
    measure: engine.MeasureConfig,
    export_dir: Path,
    on_epoch: Callable[[engine.EpochReport], None] | None = None,
) -> FrontMember:
    """Re-run a front trial's candidate with the final fine-tune (``on_epoch`` after each epoch), test
    it once, export it."""
    candidate = final_candidate(space.candidate(record.params), config.finalize)
    result = engine.evaluate_candidate(dense, candidate, splits, measure=measure, on_epoch=on_epoch)
    assert result.model is not None
    test = engine.evaluate(result.model, splits.test)
    metadata = {
        "model": models.model_spec(config.model),
        "num_classes": splits.num_classes,
        "class_names": list(splits.class_names),
        "normalization": {"mean": list(splits.mean), "std": list(splits.std)},
        "pipeline": config.name,
        "trial": record.number,
        "original_plan": candidate.plan.to_dict(),
    }
    plan = candidate.plan.resolved(result.kept)
    engine.save_pruned(result.model, plan, export_dir, input_shape=splits.input_shape, metadata=metadata)
    onnx_path = None
    if config.finalize.onnx:
        onnx_path = export_dir / "model.onnx"
        engine.export_onnx(result.model, splits.input_shape, onnx_path)
    log.info("front trial %d: test accuracy %.4f", record.number, test.accuracy)
    return FrontMember(record, candidate, result, test.accuracy, export_dir, onnx_path)


def choose_aliases(rows: Sequence[Mapping[str, Any]], config: PipelineConfig, dense: DenseReference) -> dict[str, int]:
    """Alias -> trial number for front members (rows with ``trial``, ``test_accuracy`` and the
    ``final_*`` figures): ``smallest`` (params), ``fastest`` (latency vs dense), ``most-accurate``
    (test accuracy), and ``champion``: the best by the pipeline's ``champion.prefer`` among members
    within ``champion.max_accuracy_drop`` of the dense test accuracy (the most accurate if none is)."""
    if not rows:
        return {}
    cost_key = {
        "params": "final_params",
        "macs": "final_macs",
        "size_bytes": "final_size_bytes",
        "latency_ms": "final_latency_ratio",
    }

    def cheapest(candidates: Sequence[Mapping[str, Any]], metric: str) -> int:
        return int(min(candidates, key=lambda r: (float(r[metric]), -float(r["test_accuracy"])))["trial"])

    def most_accurate(candidates: Sequence[Mapping[str, Any]]) -> int:
        return int(max(candidates, key=lambda r: (float(r["test_accuracy"]), -float(r["final_macs"])))["trial"])

    rule = config.champion
    eligible = [r for r in rows if float(r["test_accuracy"]) >= dense.test_accuracy - rule.max_accuracy_drop - 1e-12]
    champion = (
        cheapest(eligible, cost_key[rule.prefer])
        if eligible and rule.prefer != "accuracy"
        else most_accurate(eligible or rows)
    )
    return {
        "smallest": cheapest(rows, "final_params"),
        "fastest": cheapest(rows, "final_latency_ratio"),
        "most-accurate": most_accurate(rows),
        "champion": champion,
    }
