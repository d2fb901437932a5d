"""The MLflow reporter: one child run per trial, closed even when its process was killed."""

from __future__ import annotations

import pytest

from autoprune.engine import EpochReport
from autoprune.search import TrialRecord
from autoprune.tracking import FinalizeCurve, MlflowReporter, Tracker, run_name

METRICS = {"val_accuracy": 0.95, "macs": 12345.0, "latency_ms": 0.2, "latency_ratio": 0.8, "params": 100.0}


@pytest.fixture()
def tracker(tmp_path) -> Tracker:
    return Tracker(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", "reporter-test").open()


def test_runs_are_named_logged_and_closed(tracker: Tracker) -> None:
    parent = tracker.create_run("search", tags={"autoprune.kind": "search"})
    reporter = MlflowReporter(tracker, parent, live_after_s=0.0).start()
    reporter.trial_started(0, {"ratio.a": 0.5, "lr": 0.01})
    reporter.epoch_finished(0, EpochReport(1, 0.5, 0.90, 0.3, 1.0))
    record = TrialRecord(
        0, "complete", {"ratio.a": 0.5, "lr": 0.01}, metrics=METRICS, epochs=[0.90, 0.95], kept={"a": 4}
    )
    reporter.trial_finished(record)
    reporter.trial_started(1, {"ratio.a": 0.9, "lr": 9.0})
    reporter.trial_finished(
        TrialRecord(1, "failed", {"ratio.a": 0.9, "lr": 9.0}, error="TrialDiverged: loss became nan")
    )
    reporter.flush()
    runs = tracker.children(parent)
    ok, failed = runs[0], runs[1]
    assert (
        ok.info.status == "FINISHED" and ok.info.run_name == run_name(record) == "t000 acc=0.950 macs=12.35K lat=0.20ms"
    )
    assert ok.data.params == {"ratio.a": "0.5", "lr": "0.01"} and ok.data.metrics["kept.a"] == 4
    history = tracker.client.get_metric_history(ok.info.run_id, "val_accuracy")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.90), (2, 0.95)]
    assert failed.info.status == "FAILED" and failed.data.tags["autoprune.error"] == "TrialDiverged: loss became nan"
    reporter.close()


def test_reconcile_closes_killed_trials_and_fills_missing_ones(tracker: Tracker) -> None:
    parent = tracker.create_run("search", tags={"autoprune.kind": "search"})
    killed = MlflowReporter(tracker, parent).start()
    killed.trial_started(0, {"lr": 0.1})  # its process died here: the run stays RUNNING
    killed.flush()
    assert tracker.children(parent)[0].info.status == "RUNNING"
    records = [
        TrialRecord(0, "failed", {"lr": 0.1}),  # Optuna's heartbeat failed it
        TrialRecord(1, "complete", {"lr": 0.05}, metrics=METRICS, epochs=[0.95]),  # logged nowhere yet
        TrialRecord(2, "running", {"lr": 0.02}),  # another worker's: left alone
    ]
    reporter = MlflowReporter(tracker, parent).start()
    assert reporter.reconcile(records) == 2
    runs = tracker.children(parent)
    assert set(runs) == {0, 1}
    assert runs[0].info.status == "FAILED" and "process stopped" in runs[0].data.tags["autoprune.error"]
    assert runs[1].info.status == "FINISHED" and runs[1].data.metrics["val_accuracy"] == 0.95
    assert reporter.reconcile(records) == 0  # idempotent: one run per trial
    reporter.close()


def test_a_run_reconcile_creates_logs_the_params_a_live_one_would(tracker: Tracker) -> None:
    parent = tracker.create_run("search", tags={"autoprune.kind": "search"})
    reporter = MlflowReporter(tracker, parent, logged_params=lambda params: {**params, "fitted.conv1": 0.25}).start()
    assert reporter.reconcile([TrialRecord(0, "complete", {"lr": 0.05}, metrics=METRICS, epochs=[0.95])]) == 1
    assert tracker.children(parent)[0].data.params == {"lr": "0.05", "fitted.conv1": "0.25"}
    reporter.logged_params = lambda params: {**params, "fitted.conv1": params["ratio"]}  # partial params: KeyError
    assert reporter.reconcile([TrialRecord(1, "failed", {"lr": 0.02})]) == 1
    assert tracker.children(parent)[1].data.params == {"lr": "0.02"}
    reporter.close()


def test_logging_errors_surface_in_flush(tracker: Tracker) -> None:
    reporter = MlflowReporter(tracker, "no-such-parent-run").start()
    reporter.trial_started(0, {"lr": 0.1})
    reporter.trial_finished(TrialRecord(0, "complete", {"lr": 0.1}, metrics=METRICS))
    reporter.flush()  # creating a child of an unknown parent is allowed; nothing failed
    reporter._queue.put((lambda: 1 / 0, ()))
    with pytest.raises(ZeroDivisionError):
        reporter.flush()
    reporter.close()


def test_param_text_reads_as_written() -> None:
    from autoprune.tracking._client import _param_text

    assert _param_text(-0.15 + 3 * 0.05) == "0"  # an offset on the step grid from -0.15 (pruning.spread)
    assert (_param_text(3 * 0.05), _param_text(1e-6), _param_text(0.0123456789), _param_text("sgd")) == (
        "0.15",
        "1e-06",
        "0.0123457",
        "sgd",
    )


def test_a_finalize_curve_writes_its_epochs_together_and_all_of_them_on_flush(tracker: Tracker) -> None:
    run = tracker.create_run("member", tags={})

    def history() -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in tracker.client.get_metric_history(run, "finalize.val_accuracy"))

    curve = FinalizeCurve(tracker, run, every=3600.0)
    curve(EpochReport(1, 0.9, 0.80, 0.5, 1.0, epochs=3))
    curve(EpochReport(2, 0.7, 0.85, 0.4, 1.0, epochs=3))
    assert history() == []  # not yet: short epochs are written together
    curve.every = 0.0
    curve(EpochReport(3, 0.6, 0.87, 0.3, 1.0, epochs=3))
    assert history() == [(1, 0.80), (2, 0.85), (3, 0.87)]
    curve.flush()  # nothing left: no second copy
    assert len(tracker.client.get_metric_history(run, "finalize.train_loss")) == 3
