"""The shared engine: dependency groups, prune plans, importance, pruning, fine-tuning, evaluation,
measurement and export. It knows torch and Torch-Pruning only (no Optuna, Ray or MLflow)."""

from __future__ import annotations

from ._calibrate import batchnorm_layers, recalibrate_batchnorm
from ._candidate import Candidate, CandidateResult, MeasureConfig, evaluate_candidate, evaluate_deployed, measure_into
from ._compress import CALIBRATION_SAMPLES, Compressed, CompressionConfig, compress, onnx_accuracy, raw_inputs
from ._deploy import Preprocessed, traced
from ._device import DEVICE_PATTERN, autocast, cpu_copy, device_of, device_timer, grad_scaler, resolve_device
from ._evaluate import INFERENCE_BATCH, Evaluation, evaluate
from ._export import PLAN_FILE, WEIGHTS_FILE, describe_onnx, export_onnx, load_pruned, read_pruned_metadata, save_pruned
from ._finetune import EpochReport, FinetuneConfig, FinetuneHistory, finetune
from ._fit import SIZE_METRICS, FitToLimit
from ._groups import Group, GroupGraph, discover
from ._latency_table import FIT_PASSES, PROBE_SHAPE, LatencyTable, machine_key, probe_layer, rank_agreement
from ._measure import (
    LatencyConfig,
    count_macs,
    count_params,
    interleave,
    measure_latency,
    measure_train_throughput,
    onnx_session,
    size_bytes,
    torch_threads,
)
from ._modes import eval_mode
from ._nested import NestedChannels, nested_order
from ._plan import IMPORTANCES, PrunePlan
from ._prune import PruneOutcome, apply_plan, check_plan
from ._quantize import agreement, quantize_onnx
from ._share import MAX_CLUSTERS, distinct_weights, kmeans_1d, load_shared, save_shared, share_weights, unshare
from ._supernet import SubnetChoice, SupernetState, calibrated_accuracy, train_supernet

__all__ = [
    "CALIBRATION_SAMPLES",
    "DEVICE_PATTERN",
    "FIT_PASSES",
    "IMPORTANCES",
    "INFERENCE_BATCH",
    "MAX_CLUSTERS",
    "PLAN_FILE",
    "PROBE_SHAPE",
    "SIZE_METRICS",
    "WEIGHTS_FILE",
    "Candidate",
    "CandidateResult",
    "Compressed",
    "CompressionConfig",
    "EpochReport",
    "Evaluation",
    "FinetuneConfig",
    "FinetuneHistory",
    "FitToLimit",
    "Group",
    "GroupGraph",
    "LatencyConfig",
    "LatencyTable",
    "MeasureConfig",
    "NestedChannels",
    "Preprocessed",
    "PruneOutcome",
    "PrunePlan",
    "SubnetChoice",
    "SupernetState",
    "agreement",
    "apply_plan",
    "autocast",
    "batchnorm_layers",
    "calibrated_accuracy",
    "check_plan",
    "compress",
    "count_macs",
    "count_params",
    "cpu_copy",
    "describe_onnx",
    "device_of",
    "device_timer",
    "discover",
    "distinct_weights",
    "eval_mode",
    "evaluate",
    "evaluate_candidate",
    "evaluate_deployed",
    "export_onnx",
    "finetune",
    "grad_scaler",
    "interleave",
    "kmeans_1d",
    "load_pruned",
    "load_shared",
    "machine_key",
    "measure_into",
    "measure_latency",
    "measure_train_throughput",
    "nested_order",
    "onnx_accuracy",
    "onnx_session",
    "probe_layer",
    "quantize_onnx",
    "rank_agreement",
    "raw_inputs",
    "read_pruned_metadata",
    "recalibrate_batchnorm",
    "resolve_device",
    "save_pruned",
    "save_shared",
    "share_weights",
    "size_bytes",
    "torch_threads",
    "traced",
    "train_supernet",
    "unshare",
]
