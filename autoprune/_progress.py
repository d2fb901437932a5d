"""The progress display of ``autoprune run``: phases, then a bar of trials with the live front."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .engine import EpochReport
from .search import TrialRecord, non_dominated

__all__ = ["SearchProgress"]


class SearchProgress:
    """Implements the pipeline's `Observer` with rich: trial k/N, current front size, best accuracy."""

    def __init__(self, console: Console) -> None:
        self.console = console
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
        self.done: list[TrialRecord] = []
        self.failed = 0

    def __enter__(self) -> SearchProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def phase(self, text: str) -> None:
        self.console.log(text)

    def search_started(self, total: int, earlier: Sequence[TrialRecord]) -> None:
        self.done = [r for r in earlier if r.state == "complete"]
        self.failed = sum(r.state == "failed" for r in earlier)
        self.task = self.progress.add_task("trials", total=total, completed=min(len(self.done), total), status=self._status())

    def _status(self, running: str = "") -> str:
        feasible = [r for r in self.done if r.feasible]
        points = [(-r.metrics["val_accuracy"], r.metrics["macs"], r.metrics.get("latency_ratio", 0.0)) for r in feasible]
        front = len(non_dominated(points)) if points else 0
        best = max((r.metrics["val_accuracy"] for r in self.done), default=None)
        parts = [f"front {front}", f"best acc {best:.4f}" if best is not None else "best acc -"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if running:
            parts.append(running)
        return " · ".join(parts)

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        if self.task is not None:
            self.progress.update(self.task, status=self._status(f"t{number} pruning"))

    def epoch_finished(self, number: int, report: EpochReport) -> None:
        if self.task is not None:
            self.progress.update(self.task, status=self._status(f"t{number} epoch {report.epoch} acc {report.val_accuracy:.3f}"))

    def trial_finished(self, record: TrialRecord) -> None:
        if record.state == "complete":
            self.done.append(record)
            if self.task is not None:
                self.progress.advance(self.task)
        elif record.state == "failed":
            self.failed += 1
            self.console.log(f"[yellow]trial {record.number} failed:[/] {record.error}", markup=True)
        if self.task is not None:
            self.progress.update(self.task, status=self._status())
