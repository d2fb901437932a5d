"""The one-shot search's candidate journal: Optuna's journal format in one file, for one writer.

Optuna's ``JournalFileBackend`` serves any number of processes: every append takes a file lock
(a symlink made and removed) and is ``fsync``ed, and every call re-reads the file's new lines. For a
thousand candidates a second that was most of the time a candidate took besides its scoring
(BENCHMARKS.md, "One-shot speed on the quickstart"). The candidate study has one writer (the worker
holding the search's ``:oneshot`` lock), so this backend keeps the logs in memory, appends each batch
to the file and flushes it (written to the operating system, it survives the process being killed)
and ``fsync``s when closed. A line torn by a kill is dropped on opening, as Optuna's reader drops it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from optuna.storages.journal import BaseJournalBackend

__all__ = ["CandidateJournal"]


class CandidateJournal(BaseJournalBackend):
    """An append-only journal file with one writer (see the module docstring). `close` it when done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._logs: list[dict[str, Any]] = []
        self._file: IO[bytes] | None = None

    def open(self) -> CandidateJournal:
        """Read the file's complete lines (creating it when missing; a torn last line is cut off)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = self.path.read_bytes() if self.path.is_file() else b""
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete))
        self._logs = [json.loads(line) for line in complete.splitlines() if line.strip()]
        self._file = open(self.path, "ab")  # noqa: SIM115  # kept open across appends; close() closes it
        return self

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        return self._logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if self._file is None:
            raise RuntimeError("call CandidateJournal.open() first")
        lines = [json.dumps(log, separators=(",", ":")) for log in logs]
        self._file.write(("\n".join(lines) + "\n").encode("utf-8"))
        self._file.flush()
        self._logs.extend(json.loads(line) for line in lines)  # as a reader of the file would see them

    def close(self) -> None:
        """Make the file durable and close it (idempotent)."""
        if self._file is not None:
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
