"""Fine-tuning, evaluation, measurement and the one engine entry point."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch
from torch import nn

from autoprune import config, engine, models
from autoprune.errors import AutoPruneError, TrialDiverged

from ..conftest import DIGITS_SHAPE


def test_digits_cnn_dense_and_half_pruned_accuracy(digits, trained_cnn) -> None:
    assert engine.evaluate(trained_cnn, digits.test).accuracy >= 0.97
    plan = engine.PrunePlan.uniform(engine.discover(trained_cnn, digits.input_shape), 0.5)
    result = engine.evaluate_candidate(
        trained_cnn, engine.Candidate(plan, engine.FinetuneConfig(epochs=2, lr=0.01)), digits
    )
    assert result.status == "ok"
    assert result.macs_ratio < 0.55
    assert engine.evaluate(result.model, digits.test).accuracy >= 0.95


def test_evaluate_candidate_reports_every_measure_and_leaves_dense_alone(digits, trained_cnn) -> None:
    before = {k: v.clone() for k, v in trained_cnn.state_dict().items()}
    plan = engine.PrunePlan(ratios={"features.0": 0.25, "features.4": 0.75}, importance="taylor")
    candidate = engine.Candidate(plan, engine.FinetuneConfig(epochs=2, lr=0.01, distill_alpha=0.5))
    measure = engine.MeasureConfig(latency=engine.LatencyConfig(repeats=10, warmup=2), train_throughput=True)
    result = engine.evaluate_candidate(trained_cnn, candidate, digits, measure=measure)
    assert all(torch.equal(before[k], v) for k, v in trained_cnn.state_dict().items())
    assert result.kept == {"features.0": 24, "features.4": 16}
    assert len(result.val_accuracy_per_epoch) == 2
    assert result.params < result.dense_params and result.macs < result.dense_macs
    assert result.latency_ms > 0 and result.dense_latency_ms > 0 and result.speedup_vs_dense > 0
    assert result.train_samples_per_s > 0 and result.dense_train_samples_per_s > 0
    assert set(result.seconds) == {"prune", "finetune", "evaluate", "measure"}
    metrics = result.metrics()
    assert metrics["epochs_run"] == 2 and all(math.isfinite(v) for v in metrics.values())


def test_onnxruntime_latency_is_measured_when_asked(digits, trained_cnn) -> None:
    plan = engine.PrunePlan(ratios={"features.4": 0.5})
    measure = engine.MeasureConfig(latency=engine.LatencyConfig(repeats=5, warmup=1), onnx_latency=True)
    result = engine.evaluate_candidate(
        trained_cnn, engine.Candidate(plan, engine.FinetuneConfig(epochs=0)), digits, measure=measure
    )
    assert result.onnx_latency_ms > 0 and result.dense_onnx_latency_ms > 0


def test_a_model_measured_again_in_onnxruntime_is_exported_again_only_when_it_changed(monkeypatch) -> None:
    """The dense model is measured beside every candidate; torch.export takes seconds."""
    from autoprune.engine import _export

    exports = []
    real = _export.export_onnx
    monkeypatch.setattr(_export, "export_onnx", lambda model, *a, **k: exports.append(1) or real(model, *a, **k))
    model = models.build(config.MLPModel(arch="mlp", hidden=[16]), (1, 8, 8), 10).eval()
    latency = engine.LatencyConfig(repeats=2, warmup=1, runtime="onnxruntime")
    for _ in range(2):
        assert engine.measure_latency({"dense": model}, (1, 8, 8), latency)["dense"] > 0
    assert len(exports) == 1
    with torch.no_grad():
        model.classifier.weight.mul_(2)  # changed in place: its ONNX file would be stale
    engine.measure_latency({"dense": model}, (1, 8, 8), latency)
    assert len(exports) == 2


def test_epoch_callback_can_stop_training_early(digits) -> None:
    model = models.build(config.MLPModel(arch="mlp"), digits.input_shape, 10)
    seen = []
    history = engine.finetune(
        model, digits, engine.FinetuneConfig(epochs=5), on_epoch=lambda r: seen.append(r) or r.epoch == 2
    )
    assert history.stopped_early and [r.epoch for r in seen] == [1, 2] and len(history.epochs) == 2


def test_nan_loss_raises_trial_diverged(digits) -> None:
    model = models.build(config.MLPModel(arch="mlp"), digits.input_shape, 10)
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")
    with pytest.raises(TrialDiverged, match=r"the training loss became nan at epoch 1, step 1 \(lr=0.01"):
        engine.finetune(model, digits, engine.FinetuneConfig(epochs=1))


def test_distillation_pulls_student_towards_teacher(digits, trained_cnn) -> None:
    def agreement(student: nn.Module) -> float:
        with torch.no_grad():
            return float((student(digits.val.x).argmax(1) == trained_cnn(digits.val.x).argmax(1)).float().mean())

    torch.manual_seed(0)
    student = models.build(config.CNNModel(arch="cnn", widths=[16, 32]), digits.input_shape, 10)
    engine.finetune(student, digits, engine.FinetuneConfig(epochs=6, lr=0.05, distill_alpha=1.0), teacher=trained_cnn)
    assert agreement(student) > 0.9  # learnt from soft targets alone (alpha = 1 ignores the labels)


def test_train_fraction_uses_a_subset(digits) -> None:
    model = models.build(config.MLPModel(arch="mlp"), digits.input_shape, 10)
    history = engine.finetune(model, digits, engine.FinetuneConfig(epochs=1, train_fraction=0.25))
    assert history.train_samples == len(digits.train) // 4


def _cnn_trained_with(digits, decay: float) -> tuple[nn.Module, dict[str, torch.Tensor], list[engine.EpochReport]]:
    """A small CNN fine-tuned 3 epochs with ``ema_decay``; also its weights as the last epoch left
    them (before the average is swapped in) and the epoch reports."""
    torch.manual_seed(0)
    model = models.build(config.CNNModel(arch="cnn", widths=[8, 16]), digits.input_shape, 10)
    last: dict[str, torch.Tensor] = {}
    reports: list[engine.EpochReport] = []

    def on_epoch(report: engine.EpochReport) -> None:
        reports.append(report)
        last.update({k: v.clone() for k, v in model.state_dict().items()})

    engine.finetune(model, digits, engine.FinetuneConfig(epochs=3, lr=0.05, ema_decay=decay), on_epoch=on_epoch)
    return model, last, reports


def test_weight_averaging_follows_the_same_training_and_ends_with_the_average(digits) -> None:
    plain, plain_last, _ = _cnn_trained_with(digits, 0.0)
    averaged, averaged_last, reports = _cnn_trained_with(digits, 0.9)
    for name, tensor in plain.state_dict().items():  # the average does not steer training
        torch.testing.assert_close(averaged_last[name], tensor, msg=name)
        torch.testing.assert_close(plain_last[name], tensor, msg=name)  # off: the model ends as trained
    moved = [
        name
        for name, tensor in averaged.state_dict().items()
        if tensor.is_floating_point() and not torch.allclose(tensor, averaged_last[name])
    ]
    assert "features.0.weight" in moved and any(name.endswith("running_mean") for name in moved)  # BN statistics too
    assert reports[-1].val_accuracy == engine.evaluate(averaged, digits.val).accuracy  # epochs judge the average


def test_weight_averaging_warms_up_so_a_short_run_is_more_than_its_first_step(digits) -> None:
    torch.manual_seed(0)
    model = models.build(config.MLPModel(arch="mlp"), digits.input_shape, 10)
    # one epoch is 10 steps; at decay 0.9999 without the warm-up, (1 + n) / (10 + n), the average
    # would stay at the weights of the first step (a near-chance model)
    engine.finetune(model, digits, engine.FinetuneConfig(epochs=1, lr=0.05, ema_decay=0.9999))
    assert engine.evaluate(model, digits.val).accuracy > 0.5


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", 0.0, r"^lr: must be greater than 0, but got 0.0$"),
        ("optimizer", "rmsprop", r"^optimizer: must be 'sgd' or 'adamw', but got 'rmsprop'$"),
        ("distill_alpha", 1.5, r"^distill_alpha: must be less than or equal to 1, but got 1.5$"),
        ("ema_decay", 1.0, r"^ema_decay: must be less than 1, but got 1.0$"),
    ],
)
def test_finetune_config_validates(field: str, value: object, message: str) -> None:
    with pytest.raises(AutoPruneError, match=message):
        engine.FinetuneConfig(**{field: value})


def test_macs_params_and_bytes_of_known_layers() -> None:
    linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    assert engine.count_macs(linear, DIGITS_SHAPE) == 640
    assert engine.count_params(linear) == 650
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert engine.count_macs(conv, DIGITS_SHAPE) == 4 * 9 * 64
    assert engine.size_bytes(linear) > 650 * 4


def test_latency_is_measured_interleaved_for_every_model() -> None:
    big = nn.Sequential(nn.Flatten(), nn.Linear(64, 2048), nn.ReLU(), nn.Linear(2048, 10))
    small = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    latency = engine.measure_latency(
        {"big": big, "small": small}, DIGITS_SHAPE, engine.LatencyConfig(batch_size=64, repeats=30)
    )
    assert set(latency) == {"big", "small"} and latency["big"] > latency["small"] > 0
    with pytest.raises(
        AutoPruneError, match="^" + re.escape("runtime: must be 'torch' or 'onnxruntime', but got 'tensorrt'") + "$"
    ):
        engine.LatencyConfig(runtime="tensorrt")


def test_costs_are_measured_before_the_fine_tune(digits, trained_cnn) -> None:
    seen = []
    plan = engine.PrunePlan(ratios={"features.4": 0.5})

    def measured(result: engine.CandidateResult) -> None:
        seen.append((result.macs, result.latency_ms, list(result.val_accuracy_per_epoch)))

    result = engine.evaluate_candidate(
        trained_cnn,
        engine.Candidate(plan, engine.FinetuneConfig(epochs=1)),
        digits,
        measure=engine.MeasureConfig(latency=engine.LatencyConfig(repeats=5, warmup=1)),
        on_measured=measured,
    )
    assert seen == [(result.macs, result.latency_ms, [])] and result.macs > 0  # measured, then trained
    assert len(result.val_accuracy_per_epoch) == 1


def test_a_last_batch_of_one_sample_trains_a_model_with_batchnorm(digits) -> None:
    """65 samples in batches of 8 leave one over: it joins the batch before (BatchNorm1d cannot train on one)."""
    train = digits.train.subset(65, seed=0)
    assert len(train) == 65
    splits = dataclasses.replace(digits, train=train)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    history = engine.finetune(model, splits, engine.FinetuneConfig(epochs=1, batch_size=8))
    assert history.train_samples == 65
    assert [len(index) for index in train.shuffled_batches(8)] == [8] * 7 + [9]
