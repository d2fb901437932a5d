"""The shared engine: dependency groups, prune plans, importance, pruning, fine-tuning, evaluation,
measurement and export. It knows torch and Torch-Pruning only (no Optuna, Ray or MLflow)."""

from __future__ import annotations

from ._candidate import Candidate, CandidateResult, MeasureConfig, evaluate_candidate
from ._evaluate import INFERENCE_BATCH, Evaluation, evaluate
from ._export import PLAN_FILE, WEIGHTS_FILE, export_onnx, load_pruned, read_pruned_metadata, save_pruned
from ._finetune import OPTIMIZERS, EpochReport, FinetuneConfig, FinetuneHistory, finetune
from ._fit import SIZE_METRICS, FitToLimit
from ._groups import Group, GroupGraph, discover
from ._measure import (
    LatencyConfig,
    count_macs,
    count_params,
    measure_latency,
    measure_train_throughput,
    size_bytes,
    torch_threads,
)
from ._plan import IMPORTANCES, PrunePlan
from ._prune import PruneOutcome, apply_plan, check_plan

__all__ = [
    "IMPORTANCES",
    "INFERENCE_BATCH",
    "OPTIMIZERS",
    "PLAN_FILE",
    "SIZE_METRICS",
    "WEIGHTS_FILE",
    "Candidate",
    "CandidateResult",
    "EpochReport",
    "Evaluation",
    "FinetuneConfig",
    "FinetuneHistory",
    "FitToLimit",
    "Group",
    "GroupGraph",
    "LatencyConfig",
    "MeasureConfig",
    "PruneOutcome",
    "PrunePlan",
    "apply_plan",
    "check_plan",
    "count_macs",
    "count_params",
    "discover",
    "evaluate",
    "evaluate_candidate",
    "export_onnx",
    "finetune",
    "load_pruned",
    "measure_latency",
    "measure_train_throughput",
    "read_pruned_metadata",
    "save_pruned",
    "size_bytes",
    "torch_threads",
]
