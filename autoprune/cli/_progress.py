"""What the CLI shows while a pipeline runs: its phases, the epochs of its long trainings, then a bar
of trials with the live front (or, written to a file, one line per event)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .._vocab import Metric, TrialState, duration
from ..engine import EpochReport
from ..search import DenseReference, Objectives, TrialRecord, dominates, front_losses, non_dominated

EPOCH_LOG_EVERY_S = 10.0  # in a log file, a training's epochs between its first and last: at most one line this often

__all__ = ["LiveFront", "SearchProgress", "epoch_line", "trial_line"]


def _share(value: float, reference: float) -> str:
    return f"{value:,.0f} ({value / reference:.0%})" if reference else f"{value:,.0f}"


def trial_line(record: TrialRecord, reference: DenseReference | None) -> str:
    """One finished trial as a plain line: accuracy, size and time (what a log file shows of a search)."""
    metrics = record.metrics
    params, macs = metrics.get(Metric.PARAMS, 0.0), metrics.get(Metric.MACS, 0.0)
    parts = [
        f"val acc {metrics.get(Metric.VAL_ACCURACY, float('nan')):.4f}",
        f"{_share(params, reference.params if reference else 0)} params",
        f"{_share(macs, reference.macs if reference else 0)} MACs",
    ]
    if Metric.LATENCY_RATIO in metrics:
        parts.append(f"latency {metrics[Metric.LATENCY_RATIO]:.2f}x dense")
    if record.finetune_skipped:
        parts.append("over a size limit, not fine-tuned")
    return f"trial {record.number} done in {record.seconds:.1f} s: " + " · ".join(parts)


def _epoch_figures(report: EpochReport, per_epoch: float) -> str:
    """How an epoch of a long training went, and about how long the training has left at ``per_epoch``
    seconds an epoch."""
    seconds = f"{report.seconds:.{2 if report.seconds < 1 else 1}f} s/epoch"
    parts = [f"train loss {report.train_loss:.4f}", f"val acc {report.val_accuracy:.4f}"]
    parts += [f"{name} {value:.4f}" for name, value in report.extra]
    parts.append(seconds)
    if report.epochs > report.epoch:
        parts.append(f"about {duration((report.epochs - report.epoch) * per_epoch)} left")
    return " · ".join(parts)


def epoch_line(what: str, report: EpochReport, per_epoch: float) -> str:
    """One epoch of a long training as a plain line (what a log file shows of it)."""
    return f"{what}: epoch {report.epoch}/{report.epochs or '?'} · {_epoch_figures(report, per_epoch)}"


class LiveFront:
    """The non-dominated points seen so far (minimisation), updated one point at a time."""

    def __init__(self) -> None:
        self.points: list[tuple[float, ...]] = []

    def __len__(self) -> int:
        return len(self.points)

    def add(self, point: tuple[float, ...]) -> bool:
        """Add ``point`` unless a point seen dominates it; drop the points it dominates. True when added."""
        if any(dominates(other, point) for other in self.points):
            return False
        self.points = [other for other in self.points if not dominates(point, other)] + [point]
        return True


class SearchProgress:
    """Implements the pipeline's `Observer` with rich: trial k/N, current front size, best accuracy,
    and a bar for each long training (the dense model, a front member's final fine-tune).

    A live bar only draws on a terminal; written to a file or pipe (nohup, CI, a scheduler's log) each
    finished trial is logged as one line instead, and so are a training's first and last epoch (or the
    one it stopped at) and one epoch every ``EPOCH_LOG_EVERY_S`` between, so the log shows how the run
    goes without a line for each of many sub-second epochs."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.objectives: Objectives | None = None
        self.reference: DenseReference | None = None
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
        )
        self.task: Any = None
        self.trainings: dict[str, Any] = {}  # what is trained -> its bar
        self.logged_epoch_at: dict[str, float] = {}  # what is trained -> when a log line last showed an epoch of it
        self.epoch_seconds: dict[str, list[float]] = {}  # what is trained -> its epochs' seconds so far
        self.unlogged_epoch: dict[str, str] = {}  # what is trained -> the line of its latest epoch, not logged yet
        self.clock = time.monotonic
        self.done: list[TrialRecord] = []
        self.failed = 0
        self.total = 0
        self.candidates: Any = None  # the bar of one-shot candidates while they are scored
        self.candidate_front = LiveFront()
        self.best_candidate = float("-inf")
        self.candidates_logged = float("-inf")

    def __enter__(self) -> SearchProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def _log(self, text: str, *, markup: bool = False) -> None:
        """A timestamped line: rich's log on a terminal; in a file one unpadded, unwrapped line per event."""
        if self.console.is_terminal:
            self.console.log(text, markup=markup)
        else:
            self.console.print(f"[{time.strftime('%H:%M:%S')}] {text}", markup=markup, highlight=False, soft_wrap=True)

    def phase(self, text: str) -> None:
        for task in self.trainings.values():  # a new phase: a training stopped early has ended too
            self.progress.remove_task(task)
        self.trainings.clear()
        for line in self.unlogged_epoch.values():  # and a log shows the epoch it stopped at
            self._log(line)
        self.unlogged_epoch.clear()
        self._log(text)

    def training_epoch(self, what: str, report: EpochReport) -> None:
        seconds = self.epoch_seconds.setdefault(what, [])
        if report.epoch <= 1:
            seconds.clear()
        seconds.append(report.seconds)
        per_epoch = statistics.median(seconds)  # the time left: one slow epoch on a busy machine does not triple it
        if not self.console.is_terminal:
            self._log_epoch(what, report, per_epoch)
            return
        if what not in self.trainings:
            self.trainings[what] = self.progress.add_task(what, total=report.epochs or None, status="")
        self.progress.update(self.trainings[what], completed=report.epoch, status=_epoch_figures(report, per_epoch))
        if report.epochs and report.epoch >= report.epochs:
            self.progress.remove_task(self.trainings.pop(what))

    def _log_epoch(self, what: str, report: EpochReport, per_epoch: float) -> None:
        now, logged_at = self.clock(), self.logged_epoch_at.get(what)
        first, last = report.epoch <= 1, bool(report.epochs) and report.epoch >= report.epochs
        line = epoch_line(what, report, per_epoch)
        if first or last or logged_at is None or now - logged_at >= EPOCH_LOG_EVERY_S:
            self._log(line)
            self.logged_epoch_at[what] = now
            self.unlogged_epoch.pop(what, None)
        else:
            self.unlogged_epoch[what] = line

    def search_started(
        self,
        total: int,
        earlier: Sequence[TrialRecord],
        objectives: Objectives | None = None,
        reference: DenseReference | None = None,
    ) -> None:
        self.objectives, self.reference = objectives, reference
        self.done = [r for r in earlier if r.state == TrialState.COMPLETE]
        self.failed = sum(r.state == TrialState.FAILED for r in earlier)
        self.total = total
        self.task = self.progress.add_task(
            "trials", total=total, completed=min(len(self.done), total), status=self._status()
        )

    def _status(self, running: str = "") -> str:
        feasible = [r for r in self.done if r.feasible]
        if self.objectives is not None and self.reference is not None:
            losses = front_losses(self.done, self.objectives, self.reference)  # as the final front counts them
            points = [losses[r.number] for r in feasible]
        else:
            points = [[-r.metrics[Metric.VAL_ACCURACY], r.metrics[Metric.MACS]] for r in feasible]
        front = len(non_dominated(points)) if points else 0
        best = max((r.metrics[Metric.VAL_ACCURACY] for r in self.done), default=None)
        parts = [f"front {front}", f"best acc {best:.4f}" if best is not None else "best acc -"]
        over = sum(r.finetune_skipped for r in self.done)
        if over:
            parts.append(f"{over} over a size limit")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if running:
            parts.append(running)
        return " · ".join(parts)

    def candidate_scored(self, record: TrialRecord, done: int, total: int) -> None:
        """A bar of one-shot candidates, with the size of their front so far (kept incrementally: a
        thousand candidates must not cost a thousand full sorts); in a log file a line every 10 s."""
        if self.candidates is None:
            self.candidates = self.progress.add_task("candidates", total=total, completed=done - 1, status="")
        if record.state == TrialState.COMPLETE and record.feasible:
            self.candidate_front.add(self._losses(record))
            self.best_candidate = max(self.best_candidate, record.metrics[Metric.VAL_ACCURACY])
        status = f"front {len(self.candidate_front)} · best calibrated acc {self.best_candidate:.4f}"
        self.progress.update(self.candidates, completed=done, status=status)
        if not self.console.is_terminal and (
            done == total or self.clock() - self.candidates_logged >= EPOCH_LOG_EVERY_S
        ):
            self._log(f"candidates {done}/{total} · {status}")
            self.candidates_logged = self.clock()

    def candidates_done(self, records: Sequence[TrialRecord], front: Sequence[int]) -> None:
        if self.candidates is not None:
            self.progress.remove_task(self.candidates)
            self.candidates = None
        scored = sum(r.state == TrialState.COMPLETE for r in records)
        self._log(f"{scored} candidates scored, {len(front)} on their front")

    def _losses(self, record: TrialRecord) -> tuple[float, ...]:
        if self.objectives is not None and self.reference is not None:
            return tuple(self.objectives.losses(record.metrics, self.reference))
        return (-record.metrics[Metric.VAL_ACCURACY], record.metrics[Metric.MACS])

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        if self.task is not None:
            self.progress.update(self.task, status=self._status(f"t{number} pruning"))

    def epoch_finished(self, number: int, report: EpochReport) -> None:
        if self.task is not None:
            self.progress.update(
                self.task, status=self._status(f"t{number} epoch {report.epoch} acc {report.val_accuracy:.3f}")
            )

    def trial_finished(self, record: TrialRecord) -> None:
        if record.state == TrialState.COMPLETE:
            self.done.append(record)
            if self.task is not None:
                self.progress.advance(self.task)
            if not self.console.is_terminal:
                count = f"[{len(self.done)}/{self.total}]"
                self._log(f"{count} {trial_line(record, self.reference)} · {self._status()}")
        elif record.state == TrialState.FAILED:
            self.failed += 1
            self._log(f"[yellow]trial {record.number} failed:[/] {escape(str(record.error))}", markup=True)
        if self.task is not None:
            self.progress.update(self.task, status=self._status())
