"""The shared engine: dependency groups, prune plans, importance, pruning, fine-tuning, evaluation,
measurement and export. It knows torch and Torch-Pruning only (no Optuna, Ray or MLflow)."""

from __future__ import annotations

from ._candidate import Candidate, CandidateResult, MeasureConfig, evaluate_candidate
from ._evaluate import INFERENCE_BATCH, Evaluation, evaluate
from ._export import PLAN_FILE, WEIGHTS_FILE, export_onnx, load_pruned, read_pruned_metadata, save_pruned
from ._fit import SIZE_METRICS, FitToLimit
from ._finetune import OPTIMIZERS, EpochReport, FinetuneConfig, FinetuneHistory, finetune
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
    "Candidate",
    "CandidateResult",
    "MeasureConfig",
    "evaluate_candidate",
    "Evaluation",
    "INFERENCE_BATCH",
    "evaluate",
    "PLAN_FILE",
    "WEIGHTS_FILE",
    "export_onnx",
    "load_pruned",
    "read_pruned_metadata",
    "save_pruned",
    "SIZE_METRICS",
    "FitToLimit",
    "OPTIMIZERS",
    "EpochReport",
    "FinetuneConfig",
    "FinetuneHistory",
    "finetune",
    "Group",
    "GroupGraph",
    "discover",
    "LatencyConfig",
    "count_macs",
    "count_params",
    "measure_latency",
    "measure_train_throughput",
    "size_bytes",
    "torch_threads",
    "IMPORTANCES",
    "PrunePlan",
    "PruneOutcome",
    "apply_plan",
    "check_plan",
]
