"""A time limit for code that may never return (a user's factory, Torch-Pruning's grouping).

A timer signal interrupts the block wherever it is; the caller learns where it was stopped and turns
that into its own one-line error. Signals reach the main thread only: elsewhere the block runs
unbounded (a worker thread's caller bounds it in its own way).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = ["Expired", "deadline", "innermost"]


class Expired(Exception):
    """The block ran past its limit; ``frame`` is where it was stopped."""

    def __init__(self, seconds: float, frame: FrameType | None) -> None:
        super().__init__(f"did not finish in {seconds:g} s")
        self.seconds = seconds
        self.frame = frame


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise `Expired` inside the block once it has run ``seconds`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Expired(seconds, frame)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def innermost(frame: FrameType | None, outside: Callable[[str], bool]) -> tuple[str, str] | None:
    """``("function()", filename)`` of the innermost frame of ``frame``'s stack whose file
    ``outside`` accepts, or None."""
    for candidate, line in traceback.walk_stack(frame):
        filename = candidate.f_code.co_filename
        if outside(filename):
            return f"{candidate.f_code.co_qualname}()", f"{filename}:{line}"
    return None
