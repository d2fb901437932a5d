"""What a Ray worker runs for one trial of the Ray backend, and the keys its reports carry.

Only the engine call happens here: the worker prunes, fine-tunes and measures, reports every
fine-tune epoch (for ASHA and the progress display) and one final report with the whole outcome;
everything that talks to the study or to MLflow stays in the driver (`_ray_tune`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from optuna.distributions import CategoricalDistribution, IntDistribution

from ..._vocab import Metric
from ...engine import EpochReport, FinetuneConfig
from .._evaluator import CandidateEvaluator

__all__ = ["COST_KEYS", "NUMBER_KEY", "OUTCOME_KEY", "max_epochs", "trainable"]

OUTCOME_KEY = "autoprune_outcome"  # the final report of a trial carries the whole TrialRecord
NUMBER_KEY = "autoprune_trial"  # the study's trial number, passed to the worker with the params
COST_KEYS = (Metric.PARAMS, Metric.MACS, Metric.SIZE_BYTES, Metric.LATENCY_MS, Metric.LATENCY_RATIO)


def max_epochs(evaluator: CandidateEvaluator) -> int:
    """The most fine-tune epochs a candidate of this space can get (ASHA's ``max_t``)."""
    distribution = evaluator.space.distributions.get("epochs")
    if isinstance(distribution, IntDistribution):
        return int(distribution.high)
    if isinstance(distribution, CategoricalDistribution):
        return max(int(str(choice)) for choice in distribution.choices)
    return int(evaluator.space.fixed.get("epochs", FinetuneConfig().epochs))


def trainable(config: dict[str, Any], evaluator: CandidateEvaluator) -> None:
    """One trial, in a Ray worker: the engine call, an epoch report per fine-tune epoch, one final report."""
    import ray
    import torch
    from ray import tune

    resources = ray.get_runtime_context().get_assigned_resources()
    torch.set_num_threads(max(1, math.ceil(resources.get("CPU", 1.0))))
    gpu = resources.get("GPU", 0) > 0 and torch.cuda.is_available()  # Ray shows the trial its GPUs only
    evaluator.to(torch.device("cuda" if gpu else "cpu"))
    params = {key: value for key, value in config.items() if key != NUMBER_KEY}
    costs: dict[str, float] = {}

    def on_epoch(report: EpochReport) -> None:
        tune.report(
            {
                "epoch": report.epoch,
                Metric.VAL_ACCURACY: report.val_accuracy,
                Metric.VAL_LOSS: report.val_loss,
                "train_loss": report.train_loss,
                "epoch_seconds": report.seconds,
                **costs,
            }
        )

    record, _ = evaluator(int(config.get(NUMBER_KEY, -1)), params, on_epoch=on_epoch, on_measured=costs.update)
    outcome = {"state": str(record.state), "constraints": record.constraints, **record.outcome()}
    tune.report(
        {"epoch": len(record.epochs), **record.metrics, OUTCOME_KEY: json.dumps(outcome)}
    )  # Tune flattens dicts
