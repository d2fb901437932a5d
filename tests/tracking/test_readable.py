"""What a person reads in the MLflow UI: a front member's figures under one prefix, rounded, read back
the same (and from runs logged under the names before); trials without look-alike figures."""

from __future__ import annotations

import math

import pytest

from autoprune.search import FinalizedMember, Metric
from autoprune.tracking._reporter import UNLOGGED, readable

MEMBER = FinalizedMember(
    trial=7,
    test_accuracy=0.981481481481,
    val_accuracy=0.996296296296,
    params=9778,
    macs=153478,
    size_bytes=8536,
    latency_ms=0.0604912345,
    latency_ratio=0.874712345,
    epochs=4,
    lr=0.0771784686,
    distill_alpha=0.345,
    ema_decay=0.0,
    run_id="r" * 32,
    compression="16 shared values",
)


def test_a_members_figures_are_logged_under_front_rounded_and_read_back() -> None:
    logged = MEMBER.metrics()
    assert list(logged) == FinalizedMember.metric_names()
    assert logged["front.test_accuracy"] == 0.9815 and logged["front.latency_ms"] == 0.06049
    assert logged["front.speedup"] == 1.143 and logged["front.params"] == 9778
    params = {name: str(value) for name, value in MEMBER.recipe().items()}
    assert params == {"front.epochs": "4", "front.lr": "0.0771784686", "front.distill_alpha": "0.345"} | {
        "front.ema_decay": "0.0"
    }
    back = FinalizedMember.from_metrics(7, logged, params, run_id=MEMBER.run_id, compression=MEMBER.compression)
    assert back is not None
    assert (back.params, back.macs, back.size_bytes, back.epochs, back.lr) == (9778, 153478, 8536, 4, MEMBER.lr)
    assert back.test_accuracy == 0.9815 and back.speedup == pytest.approx(1.143)
    assert back.compression == "16 shared values"


def test_runs_logged_before_the_front_prefix_are_still_read() -> None:
    old = {
        "test_accuracy": 0.98,
        "final_val_accuracy": 0.99,
        "final_params": 100.0,
        "final_macs": 200.0,
        "final_size_bytes": 900.0,
        "final_latency_ms": 0.05,
        "final_latency_ratio": 0.8,
        "final_epochs": 3.0,
        "final_lr": 0.01,
    }
    member = FinalizedMember.from_metrics(2, old)
    assert member is not None
    assert (member.test_accuracy, member.params, member.latency_ratio, member.epochs) == (0.98, 100, 0.8, 3)
    assert math.isclose(member.speedup, 1.25) and member.distill_alpha == 0.0  # the default where none was logged
    assert FinalizedMember.from_metrics(2, {"final_params": 1.0}) is None  # incomplete: not a member


def test_a_trials_run_gets_no_look_alike_figures_and_rounded_ones() -> None:
    record = {
        Metric.VAL_ACCURACY: 0.973456789,
        Metric.VAL_LOSS: 0.1,
        Metric.LATENCY_MS: 0.0648882496,
        Metric.LATENCY_RATIO: 0.887008925430,
        Metric.DENSE_LATENCY_MS: 0.07,
        Metric.SPEEDUP: 1.13,
        Metric.MACS_RATIO: 0.5,
        Metric.PARAMS: 9778.0,
        "constraint.max_accuracy_drop": -0.0374074074,
        "trial_seconds": 1.23456,
    }
    shown = readable(record)
    assert not set(shown) & UNLOGGED
    assert shown == {
        Metric.VAL_ACCURACY: 0.9735,
        Metric.LATENCY_MS: 0.06489,
        Metric.LATENCY_RATIO: 0.887008925430,  # the objective keeps every digit
        Metric.PARAMS: 9778.0,
        "constraint.max_accuracy_drop": -0.0374,
        "trial_seconds": 1.23,
    }
