"""One front member at a time, for the conclude step: which members to finalize, the final fine-tune's
recipe, the fine-tune itself with the single test-split evaluation and the exports, and which member
each registry alias names."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .. import engine, models
from .._vocab import Metric
from ..config import FinalizeConfig, PipelineConfig
from ..data import Splits
from ..search import DenseReference, FinalizedMember, SearchSpace, TrialRecord, choose_members

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
    deployed: Mapping[str, str] = dataclasses.field(default_factory=dict)  # see `deployed_metadata`

    @property
    def number(self) -> int:
        return self.record.number

    @property
    def latency_ratio(self) -> float:
        return self.result.latency_ms / self.result.dense_latency_ms

    def finalized(self, run_id: str, dense_latency_ms: float) -> FinalizedMember:
        """The member's final figures, for its run ``run_id``; its latency as ``dense_latency_ms`` (the
        dense reference's) times the ratio measured side by side, as every view of the front shows it."""
        result, recipe = self.result, self.candidate.finetune
        return FinalizedMember(
            trial=self.number,
            test_accuracy=self.test_accuracy,
            val_accuracy=result.val_accuracy,
            params=result.params,
            macs=result.macs,
            size_bytes=result.size_bytes,
            latency_ms=dense_latency_ms * self.latency_ratio,
            latency_ratio=self.latency_ratio,
            epochs=recipe.epochs,
            lr=recipe.lr,
            distill_alpha=recipe.distill_alpha,
            ema_decay=recipe.ema_decay,
            run_id=run_id,
            compression=self.candidate.compression.describe(),
        )


def copies_of_earlier(members: Sequence[TrialRecord]) -> dict[int, int]:
    """Members that repeat an earlier one: trial -> the earlier trial. Two trials whose ratios differ
    can keep the same channels in every group; with the same recipe they also reach the same
    validation accuracy, and finalizing both would spend the same fine-tune twice for one model."""
    first: dict[tuple[Any, ...], int] = {}
    copies = {}
    for record in sorted(members, key=lambda r: r.number):
        if not record.kept:
            continue
        key = (tuple(sorted(record.kept.items())), record.metrics.get(Metric.VAL_ACCURACY))
        if key in first:
            copies[record.number] = first[key]
        else:
            first[key] = record.number
    return copies


def final_candidate(candidate: engine.Candidate, settings: FinalizeConfig) -> engine.Candidate:
    """The trial's candidate with the final fine-tune: on the whole training split for at least
    ``finalize.epochs`` (unless null), with ``finalize.lr`` / ``distill_alpha`` / ``ema_decay`` where
    they are set, through torch.compile with ``finalize.compile``."""
    changes: dict[str, Any] = {"compile": settings.compile} if settings.compile else {}
    if settings.epochs is not None:
        changes.update(epochs=max(settings.epochs, candidate.finetune.epochs), train_fraction=1.0)
    if settings.lr is not None:
        changes["lr"] = settings.lr
    if settings.distill_alpha is not None:
        changes["distill_alpha"] = settings.distill_alpha
    if settings.ema_decay is not None:
        changes["ema_decay"] = settings.ema_decay
    return dataclasses.replace(candidate, finetune=candidate.finetune.replace(**changes))


def finalize_member(
    record: TrialRecord,
    *,
    space: SearchSpace,
    dense: nn.Module,
    splits: Splits,
    config: PipelineConfig,
    finalize: FinalizeConfig,
    measure: engine.MeasureConfig,
    export_dir: Path,
    on_epoch: Callable[[engine.EpochReport], None] | None = None,
    teacher: nn.Module | None = None,
) -> FrontMember:
    """Re-run a front trial's candidate on ``dense`` with the final fine-tune (``on_epoch`` after each
    epoch; distilled from ``teacher``, default ``dense``), test it once, export it."""
    candidate = final_candidate(space.candidate(record.params), finalize)
    result = engine.evaluate_candidate(dense, candidate, splits, measure=measure, on_epoch=on_epoch, teacher=teacher)
    assert result.model is not None  # evaluate_candidate always returns its model
    test = engine.evaluate_deployed(result, splits, splits.test)
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
    onnx_path, deployed = None, deployed_metadata(splits, metadata, plan)
    if config.finalize.onnx:
        onnx_path = export_dir / "model.onnx"
        engine.export_onnx(
            engine.Preprocessed.for_splits(result.model, splits), splits.input_shape, onnx_path, metadata=deployed
        )
    if result.compressed is not None:
        _write_compressed(result, splits, export_dir, {**deployed, "compression": candidate.compression.describe()})
    log.info("front trial %d: test accuracy %.4f", record.number, test.accuracy)
    return FrontMember(record, candidate, result, test.accuracy, export_dir, onnx_path, deployed)


def _write_compressed(
    result: engine.CandidateResult, splits: Splits, export_dir: Path, metadata: Mapping[str, str]
) -> None:
    """The compressed deployable beside the fp32 exports, saying what it is like the ONNX file does;
    the member's size becomes that file's bytes."""
    assert result.compressed is not None and result.model is not None
    path = export_dir / result.compressed.file_name
    if result.compressed.kind == "onnx-int8":
        path.write_bytes(result.compressed.data)
        engine.describe_onnx(path, metadata)
    else:
        engine.save_shared(engine.Preprocessed.for_splits(result.model, splits), path, metadata=dict(metadata))
    result.size_bytes = path.stat().st_size


def deployed_metadata(splits: Splits, metadata: Mapping[str, Any], plan: engine.PrunePlan) -> dict[str, str]:
    """What a deployed front model says about itself (the ONNX file's and the MLflow model's metadata):
    the inputs it takes, the classes it predicts, where it came from."""
    from .. import __version__

    return {
        "inputs": (
            f"raw values as the {splits.source} data source gives them, shape (batch, "
            f"{', '.join(map(str, splits.input_shape))}); scaled by input_scale, then normalised inside the model"
        ),
        "outputs": "logits, one per class in class_names order (argmax: the predicted class's index)",
        "input_shape": json.dumps(list(splits.input_shape)),
        "input_scale": repr(splits.input_scale),
        "normalization": json.dumps({"mean": list(splits.mean), "std": list(splits.std)}),
        "class_names": json.dumps(list(splits.class_names)),
        "pipeline": str(metadata["pipeline"]),
        "trial": str(metadata["trial"]),
        "plan": json.dumps(plan.to_dict(), sort_keys=True),
        "autoprune_version": __version__,
    }


def choose_aliases(members: Sequence[FinalizedMember], config: PipelineConfig, dense: DenseReference) -> dict[str, int]:
    """Alias -> trial number for finalized front members: ``smallest`` (params; bytes of the deployable
    when members are compressed), ``fastest`` (latency
    vs dense), ``most-accurate`` (test accuracy), and ``champion``: the best by the pipeline's
    ``champion.prefer`` among members within ``champion.max_accuracy_drop`` of the dense test accuracy
    (the most accurate if none is)."""
    if not members:
        return {}
    cost: dict[str, Callable[[FinalizedMember], float]] = {
        "params": lambda m: m.params,
        "macs": lambda m: m.macs,
        "size_bytes": lambda m: m.size_bytes,
        "latency_ms": lambda m: m.latency_ratio,
    }

    def cheapest(candidates: Sequence[FinalizedMember], by: Callable[[FinalizedMember], float]) -> int:
        return min(candidates, key=lambda m: (by(m), -m.test_accuracy)).trial

    def most_accurate(candidates: Sequence[FinalizedMember]) -> int:
        return max(candidates, key=lambda m: (m.test_accuracy, -m.macs)).trial

    rule = config.champion
    eligible = [m for m in members if m.test_accuracy >= dense.test_accuracy - rule.max_accuracy_drop - 1e-12]
    if eligible and rule.prefer != "accuracy":
        champion = cheapest(eligible, cost[rule.prefer])
    else:
        champion = most_accurate(eligible or members)
    compressed = any(m.compression != "fp32" for m in members)  # then the deployable's bytes tell the smallest
    return {
        "smallest": cheapest(members, cost["size_bytes" if compressed else "params"]),
        "fastest": cheapest(members, cost["latency_ms"]),
        "most-accurate": most_accurate(members),
        "champion": champion,
    }
