"""`MlflowReporter`: one child run per trial, opened when the trial starts, closed when it ends.

A trial's run is RUNNING while it fine-tunes, then FINISHED with every metric (per-epoch validation
accuracy as steps), or FAILED with the error as a tag.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..search import KEPT_PREFIX, Metric, TrialRecord, TrialState
from ._client import KIND_TAG, STATE_TAG, TRIAL_TAG, Tracker, store_errors

if TYPE_CHECKING:
    from ..engine import EpochReport

__all__ = ["UNLOGGED", "MlflowReporter", "readable", "run_name"]

log = logging.getLogger("autoprune")

WORKER_TAG = "autoprune.worker"
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # which process ran a trial (several may share a study)


UNLOGGED = frozenset(  # a record's figures a person gains nothing from in the runs table (derivable, or internal)
    {
        Metric.VAL_LOSS,
        Metric.DENSE_LATENCY_MS,  # the search's run has the dense reference
        Metric.SPEEDUP,  # = 1 / latency_ratio, measured side by side
        Metric.MACS_RATIO,
        Metric.PARAMS_RATIO,
        Metric.DENSE_TRAIN_SAMPLES_PER_S,
        Metric.ENGINE_SECONDS,  # trial_seconds is the trial's whole time
    }
)


def readable(metrics: Mapping[str, float], *, drop: frozenset[str] = UNLOGGED) -> dict[str, float]:
    """A trial's metrics as its run logs them: without ``drop`` (`UNLOGGED`), rounded as a person reads them
    (accuracies and constraint margins to 4 decimals, milliseconds to 4 significant digits, seconds
    to 2 decimals); ``latency_ratio``, the objective, keeps every digit."""
    shown = {}
    for name, value in metrics.items():
        if name in drop:
            continue
        if name.endswith("accuracy") or name.startswith("constraint."):
            value = round(value, 4)
        elif name.endswith("_ms"):
            value = float(f"{value:.4g}")
        elif name.endswith("_seconds"):
            value = round(value, 2)
        shown[name] = value
    return shown


def _short(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.0f}"


def run_name(record: TrialRecord) -> str:
    """A name that reads as a summary in a run list: ``t012 acc=0.981 macs=0.31M lat=0.21ms``
    (``t012 over-limit acc=...`` for a trial not fine-tuned because its size broke a constraint)."""
    if record.state != TrialState.COMPLETE:
        return f"t{record.number:03d} {record.state}"
    m = record.metrics
    over = " over-limit" if record.finetune_skipped else ""  # not fine-tuned: its accuracy is the pruned model's
    return (
        f"t{record.number:03d}{over} acc={m[Metric.VAL_ACCURACY]:.3f} macs={_short(m[Metric.MACS])} "
        f"lat={m[Metric.LATENCY_MS]:.2f}ms"
    )


class MlflowReporter:
    """Implements `autoprune.search.TrialReporter` on a `Tracker`, under one parent run.

    MLflow calls run on a background thread, in order, so the next trial does not wait for the store
    (three calls per trial: create the run, log its params, one final batch of metrics, tags and the
    new name before closing it). `flush` waits for them and raises the first error. Per-epoch accuracy
    is logged live only when epochs are slow enough (``live_after_s``) for a person to watch them.

    Optuna's storage stays the record of truth: `reconcile` brings MLflow in line with it (trials a
    killed process never closed, or whose logging was lost), so each trial has exactly one child run.

    `start` starts the background thread and `close` stops it; ``with MlflowReporter(...) as reporter``
    does both.
    """

    def __init__(
        self,
        tracker: Tracker,
        parent: str,
        *,
        live_after_s: float = 5.0,
        logged_params: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
        cost_metrics: Sequence[str] = ("macs",),
        dense_costs: Mapping[str, float] | None = None,
    ) -> None:
        self.tracker = tracker
        self.parent = parent
        self.live_after_s = live_after_s
        self.logged_params = logged_params  # a run created by `reconcile` logs what a live one would
        self.cost_metrics = list(cost_metrics)  # what the candidates' scatter plots put against accuracy
        self.dense_costs = dict(dense_costs or {})  # the dense model's, drawn on those plots
        self.runs: dict[int, str] = {}
        self._logged_epochs: dict[int, int] = {}
        self._queue: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue()
        self._errors: list[BaseException] = []
        self._worker: threading.Thread | None = None

    def __enter__(self) -> MlflowReporter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> MlflowReporter:
        """Start the thread that makes the MLflow calls."""
        if self._worker is None:
            self._worker = threading.Thread(target=self._drain, name="autoprune-mlflow", daemon=True)
            self._worker.start()
        return self

    # --- the background thread -------------------------------------------------------------------

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                function, args = item
                function(*args)
            except Exception as exc:  # kept and raised by flush(), in the caller's thread
                log.warning("MLflow logging failed: %s: %s", type(exc).__name__, exc)
                self._errors.append(exc)
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until everything queued is logged; raise the first logging error, if any."""
        if self._worker is None:
            raise UsageError("call MlflowReporter.start() first: nothing logs what is queued")
        self._queue.join()
        if self._errors:
            error, self._errors = self._errors[0], []
            with store_errors():
                raise error

    def close(self) -> None:
        """Let the thread finish what is queued (a minute at most), then stop it."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=60)
            self._worker = None

    # --- TrialReporter ---------------------------------------------------------------------------

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        self._queue.put((self._start, (number, dict(params))))

    def epoch_finished(self, number: int, report: EpochReport) -> None:
        if report.seconds >= self.live_after_s:
            self._queue.put((self._epoch, (number, report)))

    def trial_finished(self, record: TrialRecord) -> None:
        self._queue.put((self._finish, (record,)))

    def training_epoch(self, what: str, report: EpochReport) -> None:
        """An epoch of a training outside the trials, as series on the search's run (``supernet.val_accuracy``)."""
        self._queue.put((self._training_epoch, (what, report)))

    def candidate_scored(self, record: TrialRecord, done: int, total: int) -> None:
        pass  # candidates are not runs: they are logged together when the last is scored

    def candidates_done(self, records: Sequence[TrialRecord], front: Sequence[int]) -> None:
        self._queue.put((self._candidates, (list(records), list(front))))

    # --- the MLflow calls ------------------------------------------------------------------------

    def _create(self, number: int, params: Mapping[str, Any]) -> str:
        run_id = self.tracker.create_run(
            f"t{number:03d} running",
            tags={
                TRIAL_TAG: str(number),
                STATE_TAG: "running",
                KIND_TAG: "trial",
                "pareto": "pending",
                WORKER_TAG: WORKER,
            },
            parent=self.parent,
        )
        self.tracker.log(run_id, params=params)
        return run_id

    def _start(self, number: int, params: Mapping[str, Any]) -> None:
        self.runs[number] = self._create(number, params)

    def _epoch(self, number: int, report: EpochReport) -> None:
        run_id = self.runs.get(number)
        if run_id is not None:
            self.tracker.log(run_id, metrics={Metric.VAL_ACCURACY: round(report.val_accuracy, 4)}, step=report.epoch)
            self._logged_epochs[number] = report.epoch

    def _training_epoch(self, what: str, report: EpochReport) -> None:
        key = what.replace(" ", "_")
        metrics = {f"{key}.train_loss": report.train_loss, f"{key}.val_accuracy": report.val_accuracy}
        metrics.update({f"{key}.{name.replace(' ', '_')}_val_accuracy": value for name, value in report.extra})
        self.tracker.log(self.parent, metrics=metrics, step=report.epoch)

    def _candidates(self, records: list[TrialRecord], front: list[int]) -> None:
        """The one-shot candidates on the search's run: their table and a scatter plot per cost."""
        from ._plots import candidates_csv, pareto_figure

        self.tracker.log_text(self.parent, candidates_csv(records, set(front)), "candidates.csv")
        scored = [r for r in records if r.state == TrialState.COMPLETE]
        title = f"{len(scored)} one-shot candidates (BatchNorm-recalibrated accuracy), front of {len(front)}"
        for cost in self.cost_metrics:
            dense = self.dense_costs.get(cost, float("nan"))
            figure = pareto_figure(records, set(front), cost, dense, title, what="candidate", labels=False)
            self.tracker.log_figure(self.parent, figure, f"candidates_{cost}.png")
        failed = len(records) - len(scored)
        self.tracker.log(self.parent, metrics={"candidates_scored": len(scored), "candidates_failed": failed})

    def _finish(self, record: TrialRecord) -> None:
        run_id = self.runs.pop(record.number, None)
        if run_id is not None:  # trials started by another process are closed by that process
            self._close(run_id, record, logged_epochs=self._logged_epochs.pop(record.number, 0))

    def _close(self, run_id: str, record: TrialRecord, *, logged_epochs: int = 0) -> None:
        tags = {STATE_TAG: record.state, "feasible": str(record.feasible).lower(), "mlflow.runName": run_name(record)}
        metrics = dict(record.metrics)
        if record.state == TrialState.COMPLETE:
            metrics.update({f"{KEPT_PREFIX}{name}": count for name, count in record.kept.items()})
            metrics.update({f"constraint.{name}": value for name, value in record.constraints.items()})
        else:
            error = record.error or "the trial did not finish: its process stopped (killed or interrupted)"
            tags["autoprune.error"] = error[:5000]
        compressed = Metric.FP32_VAL_ACCURACY in metrics  # its val_accuracy is the compressed model's: one step on
        if record.epochs and not compressed:  # the final val_accuracy is the last epoch's: it comes with the series
            metrics.pop(Metric.VAL_ACCURACY, None)
        metrics["trial_seconds"] = record.seconds
        steps = {
            epoch: {str(Metric.VAL_ACCURACY): round(value, 4)}
            for epoch, value in enumerate(record.epochs, 1)
            if epoch > logged_epochs
        }
        step = len(record.epochs) + compressed
        self.tracker.log(run_id, metrics=readable(metrics), tags=tags, step=step, steps=steps)
        self.tracker.finish(run_id, "FINISHED" if record.state == TrialState.COMPLETE else "FAILED")

    def _params(self, record: TrialRecord) -> Mapping[str, Any]:
        if self.logged_params is not None:
            with contextlib.suppress(
                Exception
            ):  # a trial killed while sampling has partial params: log them as they are
                return self.logged_params(record.params)
        return record.params

    def reconcile(self, records: Sequence[TrialRecord]) -> int:
        """Give every finished trial exactly one closed child run that says how it ended.

        Returns how many runs were created or corrected. Trials still running (in another worker) are
        left alone.
        """
        self.flush()
        children = self.tracker.children(self.parent)
        fixed = 0
        for record in records:
            if not record.state.finished:
                continue
            run = children.get(record.number)
            if run is None:
                self._close(self._create(record.number, self._params(record)), record)
            elif run.info.status not in ("FINISHED", "FAILED") or run.data.tags.get(STATE_TAG) != record.state:
                self._close(run.info.run_id, record)
            else:
                continue
            fixed += 1
        return fixed
