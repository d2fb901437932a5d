"""A candidate whose size breaks a constraint is not fine-tuned (search.skip_over_limit): the fine-tune
cannot change its params, MACs or bytes, so it is infeasible before any training."""

from __future__ import annotations

import copy

import pytest
import torch

from autoprune import config, data, engine, models, search

QUICK = engine.MeasureConfig(latency=engine.LatencyConfig(warmup=1, repeats=3))


@pytest.fixture(scope="module")
def dense(digits: data.Splits) -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.build(config.CNNModel(arch="cnn", widths=[8, 16]), digits.input_shape, 10)
    engine.finetune(model, digits, engine.FinetuneConfig(epochs=3, lr=0.05))
    return model.eval()


def _evaluator(
    dense: torch.nn.Module, digits: data.Splits, constraints: dict[str, float], **kwargs: bool
) -> search.CandidateEvaluator:
    groups = engine.discover(dense, digits.input_shape)
    space_config = {"pruning": {"ratio": {"low": 0.0, "high": 0.8, "step": 0.1}}, "finetune": {"lr": 0.05, "epochs": 2}}
    space = search.SearchSpace(config.SpaceConfig.model_validate(space_config), groups)
    reference = search.DenseReference(0.9, 0.9, engine.count_params(dense), 1, 1, 1.0)
    return search.CandidateEvaluator(
        dense, digits, space, measure=QUICK, reference=reference, constraints=constraints, **kwargs
    )


def _ratios(value: float) -> dict[str, float]:
    return {"ratio.features.0": value, "ratio.features.4": value}


def test_returning_true_from_on_measured_skips_the_fine_tune(dense: torch.nn.Module, digits: data.Splits) -> None:
    plan = engine.PrunePlan(ratios={"features.0": 0.5, "features.4": 0.5})
    candidate = engine.Candidate(plan, engine.FinetuneConfig(epochs=2, lr=0.05))
    epochs: list[engine.EpochReport] = []

    skipped = engine.evaluate_candidate(
        dense, candidate, digits, measure=QUICK, on_epoch=epochs.append, on_measured=lambda r: True
    )
    assert skipped.status == "skipped" and skipped.val_accuracy_per_epoch == [] and epochs == []
    pruned = copy.deepcopy(dense)  # the same pruning, no training
    assert engine.apply_plan(pruned, plan, digits.input_shape).kept == skipped.kept
    assert skipped.val_accuracy == pytest.approx(engine.evaluate(pruned, digits.val).accuracy)

    tuned = engine.evaluate_candidate(dense, candidate, digits, measure=QUICK, on_measured=lambda r: None)
    assert tuned.status == "ok" and len(tuned.val_accuracy_per_epoch) == 2
    assert (tuned.params, tuned.macs) == (skipped.params, skipped.macs)


def test_a_trial_over_a_size_limit_is_infeasible_without_its_fine_tune(
    dense: torch.nn.Module, digits: data.Splits
) -> None:
    evaluator = _evaluator(dense, digits, {"max_params": 0.5 * engine.count_params(dense), "max_accuracy_drop": 0.5})
    costs: dict[str, float] = {}

    over, _ = evaluator(3, _ratios(0.1), on_measured=costs.update)
    assert over.state == "complete" and over.finetune_skipped and not over.feasible
    assert over.epochs == [] and over.metrics["epochs_run"] == 0 and over.metrics[search.Metric.FINETUNE_SKIPPED] == 1.0
    assert over.constraints["max_params"] > 0 and costs["params"] == over.metrics["params"]  # costs still go out first
    assert over.constraints["max_accuracy_drop"] == 0.0  # its accuracy is the un-fine-tuned model's: not counted

    within, _ = evaluator(4, _ratios(0.6))
    assert within.state == "complete" and not within.finetune_skipped and len(within.epochs) == 2
    assert within.constraints["max_params"] <= 0 and search.Metric.FINETUNE_SKIPPED not in within.metrics

    assert evaluator.over_limit(over.metrics) == [
        f"params {over.metrics['params']:,.0f} > max_params {evaluator.constraints['max_params']:,.0f}"
    ]


def test_only_size_limits_skip_and_the_skip_can_be_turned_off(dense: torch.nn.Module, digits: data.Splits) -> None:
    accuracy_only = _evaluator(dense, digits, {"max_accuracy_drop": 0.0, "max_latency_ms": 1e-9})
    record, _ = accuracy_only(1, _ratios(0.5))  # accuracy and latency are judged after the fine-tune
    assert not record.finetune_skipped and len(record.epochs) == 2 and not record.feasible

    tune_anyway = _evaluator(dense, digits, {"max_macs": 1.0}, skip_over_limit=False)
    record, _ = tune_anyway(2, _ratios(0.5))
    assert not record.finetune_skipped and len(record.epochs) == 2 and record.constraints["max_macs"] > 0


def test_constraint_values_weigh_every_limit_in_shares_of_the_dense_model() -> None:
    dense = search.DenseReference(0.95, 0.94, params=100_000, macs=8_000_000, size_bytes=400_000, latency_ms=2.0)
    limits = {"max_accuracy_drop": 0.02, "max_params": 25_000, "max_macs": 2_000_000, "max_latency_ms": 1.0}
    metrics = {"val_accuracy": 0.92, "params": 26_000, "macs": 1_920_000, "latency_ms": 1.02}
    values = search.constraint_values(limits, metrics, dense)
    assert values == pytest.approx(
        {"max_accuracy_drop": 0.01, "max_params": 0.01, "max_macs": -0.01, "max_latency_ms": 0.01}
    )
    # one point over the drop weighs what 1% of the dense params over weighs, not 1,000 params
    skipped = search.constraint_values(
        limits, {**metrics, "val_accuracy": 0.3, search.Metric.FINETUNE_SKIPPED: 1.0}, dense
    )
    assert skipped == pytest.approx({**values, "max_accuracy_drop": 0.0})  # an un-fine-tuned accuracy is no evidence
